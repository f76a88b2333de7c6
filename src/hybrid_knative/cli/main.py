"""The `hybrid-knative` command. Thin: parse options → build a Config → call one function.

Feature commands live in their own modules (cli/<feature>.py) and are registered at the bottom.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from hybrid_knative import __version__, addon
from hybrid_knative.catalog import load_catalog
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
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.system import marker


@click.group(cls=SafeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="hybrid-knative")
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
    config = build_target(**cluster)
    addon.disable(config, make_status(verbose, quiet), user_objects=user_objects)
    click.echo("hybrid-knative: disabled.")


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def status(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Show whether hybrid-knative is enabled and each component's health. Exit 0 only when healthy."""
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
    for d in h.dns:  # hybrid-knative/host
        click.echo(f"{'✓' if d.ok else '✗'} {d.name}: {d.cause} ({d.evidence})")
        if not d.ok and d.fix:
            click.echo(f"  fix: {d.fix}")
    if h.state == marker.INCOMPLETE:
        click.echo(f"enable or disable stopped half-way; {marker.REPAIR}", err=True)
    sys.exit(0 if h.healthy else 3)


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
    catalog = load_catalog()
    click.echo("KNATIVE  MIN-KUBERNETES  COMPONENTS")
    for r in catalog.releases:
        comps = ", ".join(f"{name} {c.version}" for name, c in r.components.items())
        click.echo(f"{r.line:<8} {r.min_kubernetes.minor_version:<15} {comps}")


def main() -> None:
    cli(prog_name="hybrid-knative")


# --- feature commands (each module defines its own click command or group) ----------------------
# Registered here, one line each, so that `hybrid-knative --help` lists everything.
from hybrid_knative.cli import bootstrap as _bootstrap  # noqa: E402

cli.add_command(_bootstrap.bootstrap)
from hybrid_knative.cli import join as _join  # noqa: E402

cli.add_command(_join.hub)
cli.add_command(_join.token)
cli.add_command(_join.join)
cli.add_command(_join.agent)
cli.add_command(_join.nodes)
from hybrid_knative.cli import bundle as _bundle  # noqa: E402

cli.add_command(_bundle.bundle)
from hybrid_knative.cli import doctor as _doctor  # noqa: E402

cli.add_command(_doctor.doctor)
from hybrid_knative.cli import gpu as gpu_cli  # noqa: E402

cli.add_command(gpu_cli.group)
from hybrid_knative.cli import dev as _dev  # noqa: E402

for _command in _dev.COMMANDS:
    cli.add_command(_command)
from hybrid_knative.cli import ros2 as _ros2  # noqa: E402

cli.add_command(_ros2.group)
from hybrid_knative.cli import clone as _clone  # noqa: E402

cli.add_command(_clone.clone)
from hybrid_knative.cli import ml as _ml  # noqa: E402

for _command in _ml.COMMANDS:  # model, train, certs
    cli.add_command(_command)
