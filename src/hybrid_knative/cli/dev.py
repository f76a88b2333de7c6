"""The function workflow: `new`, `deploy`, `invoke`, `logs`, `events send|tail`, `delete`. Thin: options →
one call into hybrid_knative.dev."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hybrid_knative.cli.common import handle_errors, make_status, verbosity_options
from hybrid_knative.config import ClusterTarget, SnapPaths
from hybrid_knative.dev import deploy as deploying
from hybrid_knative.dev import events as eventing
from hybrid_knative.dev import invoke as invoking
from hybrid_knative.dev import logs as logging_
from hybrid_knative.dev import offline as offline_builds
from hybrid_knative.dev import registry as registries
from hybrid_knative.dev import templates
from hybrid_knative.dev.project import load_project
from hybrid_knative.errors import ConfigError, HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.progress import Status
from hybrid_knative.system.buildah import Buildah
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring import ros2 as ros2_wiring

F = TypeVar("F", bound=Callable[..., Any])


def kube_options(fn: F) -> F:
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False),
                      help="Kubeconfig file. Default: MicroK8s's ($SNAP_DATA/credentials/client.config).")(fn)
    fn = click.option("--context", help="Kubeconfig context. Default: the file's current context.")(fn)
    return fn


def namespace_option(fn: F) -> F:
    return click.option("-n", "--namespace", help="Kubernetes namespace (default: the project's, else default).")(fn)


def build_options(fn: F) -> F:
    fn = click.option("--registry", help="Push images here (HOST[:PORT][/PATH]). Default: MicroK8s's registry "
                      "addon (localhost:32000) when enabled.")(fn)
    fn = click.option("--mirror", "mirrors", multiple=True, metavar="PREFIX=REGISTRY",
                      help="Pull base images for PREFIX (e.g. docker.io) from REGISTRY first (a registries.conf "
                      "mirror). Repeatable.")(fn)
    fn = click.option("--offline", is_flag=True, help="Air-gapped: pull docker.io base images from the cluster "
                      "registry (imported from `bundle create --with functions`).")(fn)
    fn = click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False, exists=True),
                      help="Offline pip: builds see this folder at /wheels and a pip.conf that installs only from "
                      "it (nothing of it lands in the image).")(fn)
    fn = click.option("--storage-root", type=click.Path(path_type=Path, file_okay=False), hidden=True)(fn)
    return fn


def connect(kubeconfig: Path | None, context: str | None) -> KubeApi:
    """The cluster as a ClusterTarget (validated like every command's), then lightkube."""
    target = ClusterTarget(kubeconfig=kubeconfig, context=context, snap=SnapPaths.from_environ(dict(os.environ)))
    return KubeApi.connect(target.effective_kubeconfig, target.context)


def make_buildah(storage_root: Path | None, mirrors: dict[str, str]) -> Buildah:
    if storage_root is not None:
        return Buildah(Runner(), storage_root / "root", storage_root / "run", mirrors)
    return Buildah.default(Runner(), mirrors=mirrors)


def parse_mirrors(values: tuple[str, ...], *, offline: bool, registry: str | None) -> dict[str, str]:
    mirrors = {}
    for value in values:
        prefix, sep, target = value.partition("=")
        if not sep or not prefix or not target or any(c.isspace() for c in value):
            raise click.BadParameter(f"{value!r}: expected PREFIX=REGISTRY, e.g. docker.io=localhost:32000",
                                     param_hint="--mirror")
        mirrors[prefix] = target
    if offline:
        if registry is None:
            raise ConfigError("--offline needs a registry holding the base images",
                              resolution="enable MicroK8s's registry addon or pass --registry")
        mirrors.setdefault("docker.io", registry.split("/", 1)[0])
    return mirrors


def _print_doctor(kube: KubeApi, name: str, namespace: str) -> None:
    """After a failed deploy: doctor's finding on the service (best effort: never hides the first error)."""
    from hybrid_knative.diagnose.doctor import diagnose_service
    from hybrid_knative.kube.wait import WaitPolicy
    from hybrid_knative.system.http import HostProbes

    try:
        report = diagnose_service(kube, name, namespace, probes=HostProbes(), waits=WaitPolicy(timeout=5),
                                  pod_check=False)
    except HybridError:
        return
    for f in report.findings:
        if not f.ok:
            click.echo(f"doctor: {f.cause}", err=True)
            click.echo(f"  evidence: {f.evidence}", err=True)
            if f.fix:
                click.echo(f"  fix:      {f.fix}", err=True)


# --- new -----------------------------------------------------------------------------------------

@click.command("new")
@click.argument("name")
@click.option("-t", "--template", type=click.Choice(templates.TEMPLATES), default="python-http", show_default=True,
              help="python-http / node-http: plain HTTP; *-cloudevents: receive and answer CloudEvents; "
              "knative-docker: a Serverless Framework (serverless-knative) project.")
@click.option("--path", "dest", type=click.Path(path_type=Path, file_okay=False),
              help="Folder to create (default: ./NAME).")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@verbosity_options
@handle_errors
def new(verbose: int, quiet: bool, name: str, template: str, dest: Path | None, force: bool) -> None:
    """Create a function project from a template shipped with hybrid-knative (works offline)."""
    folder = dest or Path(name)
    written = templates.create(name, template, folder, force=force)
    if not quiet:
        for path in written:
            click.echo(f"  {path}")
    click.echo(f"Created {folder} from {template}. Next: cd {folder} && hybrid-knative deploy")


# --- deploy ----------------------------------------------------------------------------------------

def _can_ask() -> bool:
    """A person at a terminal (not CI, not a pipe) who can answer a question."""
    return sys.stdin.isatty() and not os.environ.get("CI")


def _offer_registry_addon(yes: bool) -> bool:
    if yes:
        return True
    if not _can_ask():
        return False
    click.echo("MicroK8s's registry addon is not enabled, and no --registry was given: function images need a "
               "registry the cluster can pull from.", err=True)
    return click.confirm("Enable MicroK8s's registry addon now?", default=True, err=True)


@click.command("deploy")
@click.option("--path", "project_path", type=click.Path(path_type=Path, exists=True), default=Path("."),
              help="Project folder or file (hybrid-knative.yaml or serverless.yml).")
@click.option("-f", "--function", "only", help="Deploy only this function.")
@namespace_option
@build_options
@click.option("--timeout", type=click.FloatRange(1, 86400), default=300, show_default=True,
              help="Seconds to wait for Ready and for the URL to answer.")
@click.option("--verify-url/--no-verify-url", default=True, show_default=True,
              help="Print the URL only after it answers (DNS, else the ingress with a Host header).")
@click.option("--poll-interval", type=click.FloatRange(0.001, 60), default=1.0, hidden=True)
@click.option("--node", help="The robot's node for the ROS 2 bridges of `ros2` events (overrides ros2.node in the "
              "project file).")
@click.option("-y", "--yes", is_flag=True, help="When there is no registry (MicroK8s's registry addon is not "
              "enabled and no --registry), enable the addon without asking.")
@kube_options
@verbosity_options
@handle_errors
def deploy(verbose: int, quiet: bool, project_path: Path, only: str | None, namespace: str | None,
           registry: str | None, mirrors: tuple[str, ...], offline: bool, wheelhouse: Path | None,
           storage_root: Path | None, timeout: float,
           verify_url: bool, poll_interval: float, node: str | None, yes: bool, kubeconfig: Path | None,
           context: str | None) -> None:
    """Build (buildah, no Docker daemon), push, deploy by digest, wait until Ready and print the URL.

    \b
    Re-deploying an unchanged project writes nothing (same digest → no new revision). Objects carry
    the labels hybrid-knative.dev/project and hybrid-knative.dev/function; `delete` removes exactly them.
    `ros2` events also deploy a ROS 2 bridge on the robot's node (--node or ros2.node/node_selector),
    its image built the same way (docs/ros2.md).

    \b
    Images go to MicroK8s's registry addon (localhost:32000) or --registry. When neither is there, deploy
    offers to run `microk8s enable registry` (asks on a terminal; --yes accepts; without a terminal it
    stops with the commands to run) and waits until the registry answers before building anything.
    """
    status = make_status(verbose, quiet)
    project = load_project(project_path, namespace=namespace, registry=registry)
    if only:
        project.function(only)
    kube = connect(kubeconfig, context)
    chosen = deploying.selected(project, only)
    needs_build = any(fn.image is None for fn in chosen) or (
        ros2_wiring.has_ros2(chosen) and not project.ros2.get("image"))
    target = None
    if needs_build:
        if not project.registry and registries.addon(kube) is None:
            # the cluster checks first: never offer to change a cluster that cannot take the project anyway
            deploying.preflight(kube, project, chosen)
        target = registries.ensure(kube, override=project.registry, offer=lambda: _offer_registry_addon(yes),
                                   runner=Runner(), status=status, timeout=timeout, interval=poll_interval)
    if target is not None:
        status.detail(f"registry {target.push} ({target.source})")
    buildah = make_buildah(storage_root, parse_mirrors(mirrors, offline=offline,
                                                       registry=target.push if target else None))
    options = deploying.DeployOptions(timeout=timeout, poll_interval=poll_interval, verify_url=verify_url, only=only)
    try:
        with contextlib.ExitStack() as stack:
            if wheelhouse is not None:
                volumes = stack.enter_context(offline_builds.wheelhouse_volumes(wheelhouse))
                buildah = dataclasses.replace(buildah, volumes=tuple(volumes))
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hk-deploy-")))
            bridges = ros2_wiring.Ros2Bridges(workdir, Runner(), node=node, wheelhouse=wheelhouse)
            outcome = deploying.deploy(project, kube, buildah, target, status, options, companions=[bridges])
    except HybridError as exc:
        if isinstance(exc, ConfigError):
            raise
        for fn in deploying.selected(project, only):
            _print_doctor(kube, fn.service, project.namespace)
        raise
    if not outcome.written and not outcome.pruned:
        status.info(f"✓ unchanged: {len(outcome.unchanged)} objects already up to date (no new revision)")
    for line in outcome.advice:
        status.info(line)
    for service, url in outcome.urls.items():
        how = outcome.answers.get(service)
        if how:
            status.info(f"✓ {service} answers: {how}")
        click.echo(url)


# --- invoke ----------------------------------------------------------------------------------------

@click.command("invoke")
@click.argument("name")
@namespace_option
@click.option("-d", "--data", help="Request body (JSON is sent as application/json, anything else as text).")
@click.option("-X", "--method", type=click.Choice(["GET", "POST", "PUT", "DELETE", "PATCH"]),
              help="HTTP method (default: POST with --data or --cloudevent, else GET).")
@click.option("--path", "url_path", default="", help="Path to append to the function's URL.")
@click.option("--cloudevent", is_flag=True, help="Send a binary-mode CloudEvent (ce-* headers).")
@click.option("--type", "event_type", default="dev.hybrid-knative.invoke", show_default=True,
              help="CloudEvent type (with --cloudevent).")
@click.option("--source", "event_source", default="hybrid-knative/invoke", show_default=True,
              help="CloudEvent source (with --cloudevent).")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30, show_default=True)
@kube_options
@verbosity_options
@handle_errors
def invoke(verbose: int, quiet: bool, name: str, namespace: str | None, data: str | None, method: str | None,
           url_path: str, cloudevent: bool, event_type: str, event_source: str, timeout: float,
           kubeconfig: Path | None, context: str | None) -> None:
    """Call a function: through DNS when its host name resolves here, else through the ingress address
    with a Host header. Says which it used. Exit 0 for a 2xx answer, 4 otherwise."""
    kube = connect(kubeconfig, context)
    reply = invoking.invoke(kube, name, namespace or "default", method=method, data=data,
                            cloudevent={"type": event_type, "source": event_source} if cloudevent else None,
                            timeout=timeout, path=url_path)
    status = make_status(verbose, quiet)
    status.info(f"→ {reply.target.how}")
    status.info(f"← HTTP {reply.status}")
    if verbose or cloudevent:
        for key, value in sorted(reply.headers.items()):
            if verbose or key.lower().startswith("ce-"):
                status.info(f"  {key}: {value}")
    click.echo(reply.body.decode("utf-8", "replace"), nl=not reply.body.endswith(b"\n"))
    if not 200 <= reply.status < 300:
        raise SystemExit(4)


# --- logs ------------------------------------------------------------------------------------------

@click.command("logs")
@click.argument("name")
@namespace_option
@click.option("-f", "--follow", is_flag=True, help="Keep streaming: new pods (cold starts, new revisions) "
              "and new events appear as they happen. Ctrl-C to stop.")
@click.option("--tail", type=click.IntRange(0), help="Only the last N lines of each pod.")
@kube_options
@verbosity_options
@handle_errors
def logs(verbose: int, quiet: bool, name: str, namespace: str | None, follow: bool, tail: int | None,
         kubeconfig: Path | None, context: str | None) -> None:
    """A function's logs: its user container in every pod of every revision, and the revisions' and pods'
    events (scheduling, image pulls, cold starts, crashes)."""
    kube = connect(kubeconfig, context)
    ns = namespace or "default"
    lines = logging_.follow(kube, name, ns, tail=tail) if follow else logging_.snapshot(kube, name, ns, tail=tail)
    for line in lines:
        click.echo(str(line))


# --- events ----------------------------------------------------------------------------------------

@click.group("events")
def events() -> None:
    """Send CloudEvents into a namespace's Broker, and watch what flows through it."""


@events.command("send")
@click.option("--type", "event_type", required=True, help="The CloudEvent type (Triggers filter on it).")
@click.option("-d", "--data", help="Event data (JSON is sent as application/json, anything else as text).")
@click.option("--source", "event_source", default="hybrid-knative/cli", show_default=True)
@click.option("--id", "event_id", help="Event id (default: a new UUID).")
@click.option("--broker", default="default", show_default=True)
@namespace_option
@kube_options
@verbosity_options
@handle_errors
def events_send(verbose: int, quiet: bool, event_type: str, data: str | None, event_source: str,
                event_id: str | None, broker: str, namespace: str | None, kubeconfig: Path | None,
                context: str | None) -> None:
    """POST one binary-mode CloudEvent to the Broker (through the API server's service proxy, so it works
    from any machine with the kubeconfig)."""
    kube = connect(kubeconfig, context)
    route, headers = eventing.send(kube, namespace or "default", type_=event_type, data=data, source=event_source,
                                   broker=broker, event_id=event_id)
    make_status(verbose, quiet).info(f"✓ sent {headers['ce-type']} (id {headers['ce-id']}) to {route}")


@events.command("tail")
@click.option("--broker", default="default", show_default=True)
@click.option("--type", "event_type", help="Only events of this type (a Trigger filter).")
@click.option("--type-prefix", help="Only events whose type starts with this (e.g. org.ros2. for the ROS 2 "
              "bridges' topics and replies).")
@click.option("--remove", is_flag=True, help="Remove the event-display service and its Trigger, then exit.")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=300, show_default=True)
@click.option("-y", "--yes", is_flag=True, help="When there is no registry (MicroK8s's registry addon is not "
              "enabled and no --registry), enable the addon without asking.")
@namespace_option
@build_options
@kube_options
@verbosity_options
@handle_errors
def events_tail(verbose: int, quiet: bool, broker: str, event_type: str | None, type_prefix: str | None,
                remove: bool, timeout: float, yes: bool,
                namespace: str | None, registry: str | None, mirrors: tuple[str, ...], offline: bool,
                wheelhouse: Path | None, storage_root: Path | None, kubeconfig: Path | None,
                context: str | None) -> None:
    """Print every event that flows through the Broker, as it arrives (Ctrl-C to stop).

    Deploys (once) a small event-display service, built from the package's template and pushed to the
    cluster registry, with a Trigger on the Broker; it stays for the next tail (`--remove` removes it).
    Without a registry it offers to enable MicroK8s's registry addon, as deploy does (--yes accepts).
    """
    from hybrid_knative.kube.objects import ref_of

    if type_prefix is not None and (not type_prefix.strip() or any(c.isspace() for c in type_prefix)):
        raise click.BadParameter(f"{type_prefix!r}: expected a type prefix such as org.ros2.",
                                 param_hint="--type-prefix")
    status = make_status(verbose, quiet)
    ns = namespace or "default"
    kube = connect(kubeconfig, context)
    deploying.register_kinds(kube)
    if remove:
        for obj in reversed(eventing.tail_objects(ns, "unused", broker)):
            if kube.delete(ref_of(obj)):
                status.info(f"✓ removed {ref_of(obj)}")
        return
    eventing.broker_address(kube, ns, broker)
    target = registries.ensure(kube, override=registry, offer=lambda: _offer_registry_addon(yes), runner=Runner(),
                               status=status, timeout=timeout)
    buildah = make_buildah(storage_root, parse_mirrors(mirrors, offline=offline, registry=target.push))
    image = build_event_display(buildah, target, ns, status)
    filters = {"type": event_type} if event_type else None
    objs = eventing.tail_objects(ns, image, broker, filters, type_prefix)
    outcome = deploying.DeployOutcome()
    with status.step(f"Subscribe {eventing.TAIL_NAME} to Broker {ns}/{broker}"):
        deploying.apply_changes(kube, objs, outcome, status)
        deploying.wait_ready(kube, ref_of(objs[0]), timeout=timeout, interval=1.0)
    status.info("Waiting for events (Ctrl-C to stop)…")
    for line in logging_.follow(kube, eventing.TAIL_NAME, ns, tail=0):
        if line.source == "event":
            status.detail(line.text)
            continue
        event = eventing.parse_display_line(line.text)
        if event is not None:
            click.echo(json.dumps(event, sort_keys=True))


def build_event_display(buildah: Buildah, registry: registries.Registry, namespace: str, status: Status) -> str:
    with tempfile.TemporaryDirectory(prefix="hk-event-display-") as tmp:
        folder = templates.materialize("event-display", Path(tmp))
        local = f"localhost/hybrid-knative/{eventing.TAIL_NAME}:build"
        with status.step("Build the event-display receiver"):
            buildah.bud(folder, folder / "Dockerfile", local)
        with status.step(f"Push it to {registry.push}"):
            digest = buildah.push(local, f"{registry.push}/{namespace}/{eventing.TAIL_NAME}:latest")
    return f"{registry.pull}/{namespace}/{eventing.TAIL_NAME}@{digest}"


# --- delete ----------------------------------------------------------------------------------------

@click.command("delete")
@click.option("--path", "project_path", type=click.Path(path_type=Path, exists=True), default=Path("."),
              help="Project folder or file (hybrid-knative.yaml or serverless.yml).")
@click.option("-f", "--function", "only", help="Delete only this function's objects.")
@namespace_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@kube_options
@verbosity_options
@handle_errors
def delete(verbose: int, quiet: bool, project_path: Path, only: str | None, namespace: str | None, yes: bool,
           kubeconfig: Path | None, context: str | None) -> None:
    """Remove exactly what deploy created for the project (found by its labels). Images stay in the registry."""
    status = make_status(verbose, quiet)
    project = load_project(project_path, namespace=namespace)
    kube = connect(kubeconfig, context)
    found = deploying.owned(kube, project, project.function(only).name if only else None)
    if not found:
        status.info(f"Nothing to delete: no objects of project {project.name} in namespace {project.namespace}.")
        return
    if not yes:
        listing = "\n".join(f"  {o['kind']} {project.namespace}/{o['metadata']['name']}" for o in found)
        click.echo(f"This deletes:\n{listing}")
        if not click.confirm("Continue?", default=False):
            raise SystemExit(1)
    removed = deploying.delete(project, kube, status, only=only)
    status.info(f"✓ deleted {len(removed)} objects of project {project.name}")


COMMANDS: tuple[click.Command, ...] = (new, deploy, invoke, logs, events, delete)
