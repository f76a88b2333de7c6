"""The `hybrid-knative` command. Thin: parse options → build a Config → call one function.

Feature commands live in their own modules (cli/<feature>.py) and are registered at the bottom, one table
line each, so that `--help` imports none of them (see cli/lazy.py). The use cases (addon, catalog) are
imported inside the command that needs them, for the same reason.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hybrid_knative.cli.common import (
    EPILOG,
    SafeGroup,
    build_config,
    build_target,
    cluster_options,
    handle_errors,
    install_options,
    kube_version_option,
    make_status,
    verbosity_options,
)
from hybrid_knative.cli.lazy import LazyGroup
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError


class CliGroup(SafeGroup, LazyGroup):
    """Every subcommand ends with a clear error (SafeGroup), and feature commands load on use (LazyGroup)."""


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from hybrid_knative import __version__  # importlib.metadata only now

    click.echo(f"hybrid-knative, version {__version__}")
    ctx.exit()


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def cli() -> None:
    """Serverless on your own hardware: Knative Serving + Kourier on MicroK8s, with URLs that work.

    \b
    Typical use on a MicroK8s node:
      sudo microk8s enable hybrid-knative      # or: sudo hybrid-knative enable
      hybrid-knative plan --output plan/ --kubernetes-version 1.34   # dry run, no cluster needed
    """


@cli.command()
@cluster_options
@install_options
@click.option("--adopt", is_flag=True, help="Take over a Knative install that hybrid-knative did not make.")
@click.option("--bundle", type=click.Path(path_type=Path, dir_okay=False), help="Air-gap bundle (`bundle create`): "
              "images and upstream files come from it, verified; no network access at all.")
@verbosity_options
@handle_errors
def enable(verbose: int, quiet: bool, knative: str | None, upstream_dirs: tuple[Path, ...], offline: bool,
           adopt: bool, **cluster: Any) -> None:
    """Install Knative Serving + Kourier, wait until really ready, then mark the addon enabled.

    Re-running changes nothing that is already in place; it repairs what is missing.
    """
    from hybrid_knative import addon

    config = build_config(knative=knative, upstream_dirs=upstream_dirs, offline=offline, adopt=adopt, **cluster)
    status = make_status(verbose, quiet)
    outcome = addon.enable(config, status)
    release = outcome.release.line if outcome.release else "?"
    click.echo(f"hybrid-knative: Knative {release} is enabled ({outcome.written} writes).")
    if outcome.smoke_url:
        click.echo(f"Smoke service (answers HTTP 200 from this host and from pods): {outcome.smoke_url}")


# hybrid-knative/host: MicroK8s skips `microk8s enable hybrid-knative` once the marker exists (also while
# it says "incomplete"), so the way to finish or repair an install is this command (same options as enable).
repair = click.Command(
    "repair", params=list(enable.params), callback=enable.callback, epilog=EPILOG,
    help="Finish or repair an install: run every enable step again (what is in place is left as it is).\n\n"
    "Use it after an enable stopped half-way (`hybrid-knative status` says \"incomplete\") or when a part was "
    "removed: MicroK8s answers `microk8s enable hybrid-knative` with \"already enabled\" from the first "
    "change on and does not run it again. Same options as enable.")
cli.add_command(repair)


@cli.command()
@cluster_options
@click.option("--destroy-user-objects", "user_objects", flag_value="destroy",
              help="Also delete every object of hybrid-knative's CRDs that is not hybrid-knative's own "
              "(your KServices, Brokers, Triggers, InferenceServices…), first, while their controllers still run.")
@click.option("--delete-user-models", "user_objects", flag_value="destroy",
              help="The same as --destroy-user-objects (its older name, from --with ml).")
@click.option("--keep-user-objects", "user_objects", flag_value="keep",
              help="Keep hybrid-knative's CRDs and every object of them; remove everything else.")
@verbosity_options
@handle_errors
def disable(verbose: int, quiet: bool, user_objects: str | None, **cluster: Any) -> None:
    """Remove exactly what enable created, in reverse order (also after a partial enable, and from any
    control-plane node: the record is kept in the cluster).

    When objects that are not hybrid-knative's exist of its CRDs (your KServices, Brokers, Triggers,
    InferenceServices…), disable lists them and changes nothing unless you pass --destroy-user-objects
    or --keep-user-objects. Through MicroK8s: `sudo microk8s disable hybrid-knative --keep-user-objects`.
    """
    from hybrid_knative import addon

    config = build_target(**cluster)
    addon.disable(config, make_status(verbose, quiet), user_objects=user_objects)
    click.echo("hybrid-knative: disabled.")


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def status(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Show whether hybrid-knative is enabled and each component's health. Exit 0 only when healthy."""
    from hybrid_knative import addon
    from hybrid_knative.system import marker

    config = build_target(**cluster)
    h = addon.health(config)
    shown = {marker.ENABLED: "yes", marker.UNVERIFIED: "yes (not verified: enabled with --no-verify)",
             marker.INCOMPLETE: "incomplete"}
    click.echo(f"enabled: {shown.get(h.state or '', 'no')}")
    click.echo(f"knative: {h.release or '-'}")
    click.echo(f"domain: {h.domain or '-'}")
    click.echo(f"ingress IP: {h.ingress_ip or '-'}")
    if h.table:
        width = max(len(r.name) for r in h.table)
        click.echo(f"{'COMPONENT'.ljust(width)}  READY  {'VERSION':<8}  DETAIL")
        for r in h.table:
            click.echo(f"{r.name.ljust(width)}  {'yes' if r.ready else 'no':<5}  {r.version:<8}  {r.detail}")
        click.echo("")
    if h.components:
        width = max(len(c.name) for c in h.components)
        click.echo(f"{'DEPLOYMENT'.ljust(width)}  READY  DETAIL")
        for c in h.components:
            click.echo(f"{c.name.ljust(width)}  {'yes' if c.ready else 'no ':<5}  {c.detail}")
    if h.enabled:
        _print_bridges(addon.connect(config))
    for d in h.dns:  # hybrid-knative/host
        click.echo(f"{'✗' if not d.ok else '–' if d.info else '✓'} {d.name}: {d.cause} ({d.evidence})")
        if not d.ok and d.fix:
            click.echo(f"  fix: {d.fix}")
    if h.state == marker.INCOMPLETE:
        click.echo(f"enable or disable stopped half-way; {marker.REPAIR}", err=True)
    sys.exit(0 if h.healthy else 3)


def _print_bridges(kube: Any) -> None:
    """The ROS 2 bridges (users' objects: shown, but they do not change the platform's exit code)."""
    from hybrid_knative.wiring.ros2 import bridges_health, health_rows

    rows = health_rows(bridges_health(kube))
    if rows:
        width = max(len(name) for name, _, _ in rows)
        click.echo("")
        click.echo(f"{'ROS 2 BRIDGE'.ljust(width)}  READY  DETAIL")
        for name, ready, detail in rows:
            click.echo(f"{name.ljust(width)}  {ready:<5}  {detail}")


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the rendered objects to (one YAML file per step).")
@click.option("--kubernetes-version", callback=kube_version_option,
              help="Render for this Kubernetes version instead of asking the cluster (no cluster needed).")
@cluster_options
@install_options
@verbosity_options
@handle_errors
def plan(verbose: int, quiet: bool, output: Path, kubernetes_version: KubeVersion | None, knative: str | None,
         upstream_dirs: tuple[Path, ...], offline: bool, **cluster: Any) -> None:
    """Dry run: print the steps enable would take and write every change it would make. Touches nothing.

    Per step: every object it applies, every patch to an object it does not own (the CoreDNS block as the
    resulting Corefile and a diff, Kourier's externalIPs, node labels), every host file with its content
    and every command; OUTPUT/plan.txt lists them all. With a cluster (--kubeconfig, or MicroK8s's when
    --kubernetes-version is not given) each item is marked create / update / unchanged — only reads.
    """
    from hybrid_knative import addon

    if output.exists() and not output.is_dir():  # before the (slow) rendering
        raise ConfigError(f"--output {str(output)[:200]} exists and is not a folder",
                          resolution="choose a new or empty folder")
    config = build_config(knative=knative, upstream_dirs=upstream_dirs, offline=offline, **cluster)
    status = make_status(verbose, quiet)
    kube = addon.connect(config) if kubernetes_version is None or config.kubeconfig is not None else None
    version = kubernetes_version or (kube.server_version() if kube is not None else None)
    assert version is not None
    release, rendered, paths = addon.write_plan(config, version, output, status, kube=kube)
    click.echo(f"Plan for Knative {release.line} on Kubernetes {version.minor_version}:")
    for index, (r, path) in enumerate(zip(rendered, paths[: len(rendered)], strict=True), start=1):
        click.echo(f"  {index:>2}. {r.step.name:<26} {len(r.objects):>3} objects  {path}")
    for path in paths[len(rendered):]:
        click.echo(f"  example: {path}")
    click.echo(f"Every change, item by item: {output / 'plan.txt'}")


@cli.command("versions")
def versions() -> None:
    """Show the supported Knative releases and the Kubernetes versions they need."""
    from hybrid_knative.catalog import load_catalog

    catalog = load_catalog()
    click.echo("KNATIVE  MIN-KUBERNETES  COMPONENTS")
    for r in catalog.releases:
        comps = ", ".join(f"{name} {c.version}" for name, c in r.components.items())
        click.echo(f"{r.line:<8} {r.min_kubernetes.minor_version:<15} {comps}")


def main() -> None:
    cli(prog_name="hybrid-knative")


# --- feature commands ----------------------------------------------------------------------------
# One line per command: name, "module:attribute" of its click command or group, and its one-line help
# exactly as the command's own short help (the first sentence of its docstring, or its short_help=).
# The module is imported only when the command runs (or shows its own --help), so `hybrid-knative --help`
# stays fast; tests/unit/test_cli_lazy.py fails when a line drifts from the command's real help.
# To add a command: define it in cli/<feature>.py (imports of heavy libraries at module level are fine
# there) and add its line below.
cli.add_lazy("bootstrap", "hybrid_knative.cli.bootstrap:bootstrap",
             "From a fresh host to a live Knative service: install MicroK8s if missing, wait until it is ready, "
             "register the hybrid-knative addon repository, run `microk8s enable hybrid-knative ENABLE-FLAGS…`, "
             "verify it and print the URL of the smoke service.")
cli.add_lazy("hub", "hybrid_knative.cli.join:hub", "The enrolment hub on the control plane (HTTPS + mDNS).")
cli.add_lazy("token", "hybrid_knative.cli.join:token",
             "Join tokens: create (prints an hk1: enrolment string), list, revoke.")
cli.add_lazy("join", "hybrid_knative.cli.join:join", "Join this device to the cluster as a MicroK8s worker "
             "(one-shot; retries with backoff until --timeout).")
cli.add_lazy("agent", "hybrid_knative.cli.join:agent", "Daemon mode: keep trying (exponential backoff with "
             "jitter) until this device has joined, then exit 0.")
cli.add_lazy("nodes", "hybrid_knative.cli.join:nodes", "Enrolled devices (`nodes` = `nodes list`); `nodes approve ID`.")
cli.add_lazy("bundle", "hybrid_knative.cli.bundle:bundle", "Air-gap bundles: everything `enable` needs "
             "(images + pinned upstream files), verified, in one file.")
cli.add_lazy("doctor", "hybrid_knative.cli.doctor:doctor", "Say why a Knative Service does not come up (or, "
             "without KSVC, what is wrong with the platform).")
cli.add_lazy("gpu", "hybrid_knative.cli.gpu:group", "GPUs: per-node status, and a PyTorch-on-ROCm example workload.")
cli.add_lazy("new", "hybrid_knative.cli.dev:new",
             "Create a function project from a template shipped with hybrid-knative (works offline).")
cli.add_lazy("deploy", "hybrid_knative.cli.dev:deploy", "Build (buildah, no Docker daemon), push, deploy by digest, "
             "wait until Ready and print the URL.")
cli.add_lazy("invoke", "hybrid_knative.cli.dev:invoke", "Call a function: through DNS when its host name resolves "
             "here, else through the ingress address with a Host header.")
cli.add_lazy("logs", "hybrid_knative.cli.dev:logs", "A function's logs: its user container in every pod of every "
             "revision, and the revisions' and pods' events (scheduling, image pulls, cold starts, crashes).")
cli.add_lazy("events", "hybrid_knative.cli.dev:events",
             "Send CloudEvents into a namespace's Broker, and watch what flows through it.")
cli.add_lazy("delete", "hybrid_knative.cli.dev:delete",
             "Remove exactly what deploy created for the project (found by its labels).")
cli.add_lazy("ros2", "hybrid_knative.cli.ros2:group",
             "ROS 2 topics as Knative events: a bridge between a robot's DDS graph and a Broker.")
cli.add_lazy("clone", "hybrid_knative.cli.clone:clone",
             "Copy your Knative objects and their images from this cluster to another one.")
cli.add_lazy("model", "hybrid_knative.cli.ml:model", "Models: push a folder into the cluster's model store (sha256 "
             "manifest), serve it, list what is there.")
cli.add_lazy("train", "hybrid_knative.cli.ml:train", "Training with the Kubeflow Training Operator (PyTorchJob).")
cli.add_lazy("certs", "hybrid_knative.cli.ml:certs", "Webhook certificates of KServe and the Training Operator "
             "(made by hybrid-knative, no cert-manager).")
