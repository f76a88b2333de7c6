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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG)
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


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def disable(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Remove exactly what enable created, in reverse order (also after a partial enable, and from any
    control-plane node: the record is kept in the cluster)."""
    config = build_target(**cluster)
    addon.disable(config, make_status(verbose, quiet))
    click.echo("hybrid-knative: disabled.")


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def status(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Show whether hybrid-knative is enabled and each component's health. Exit 0 only when healthy."""
    config = build_target(**cluster)
    h = addon.health(config)
    click.echo(f"enabled: {'yes' if h.enabled else 'no'}")
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
