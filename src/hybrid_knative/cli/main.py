"""The `hybrid-knative` command. Thin: parse options → build a Config → call one function."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hybrid_knative import __version__, addon
from hybrid_knative.catalog import load_catalog
from hybrid_knative.config import Config, KubeVersion, SnapPaths, parse_release
from hybrid_knative.errors import ConfigError, HybridError
from hybrid_knative.progress import Status

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = (
    "Under MicroK8s use `microk8s enable hybrid-knative [OPTIONS]`; MicroK8s swallows --help there, "
    "so use `microk8s enable hybrid-knative --usage`."
)


def _state_default() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hybrid-knative"


def verbosity_options(fn: F) -> F:
    fn = click.option("-q", "--quiet", is_flag=True, help="Only print errors and results.")(fn)
    fn = click.option("-v", "--verbose", count=True, help="More detail (each object; tracebacks on errors).")(fn)
    return fn


def cluster_options(fn: F) -> F:
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False),
                      help="Kubeconfig file. Default: MicroK8s's ($SNAP_DATA/credentials/client.config).")(fn)
    fn = click.option("--context", help="Kubeconfig context. Default: the file's current context.")(fn)
    fn = click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                      help="Where the install record is kept. Default: $SNAP_COMMON/hybrid-knative/state "
                      "under MicroK8s, else ~/.local/state/hybrid-knative.")(fn)
    fn = click.option("--timeout", "wait_timeout", type=click.FloatRange(1, 86400), default=600, show_default=True,
                      help="Seconds to wait for each group of objects to become ready.")(fn)
    fn = click.option("--poll-interval", type=click.FloatRange(0.001, 60), default=1.0, hidden=True)(fn)
    return fn


def install_options(fn: F) -> F:
    fn = click.option("--knative", callback=_release, help="Knative release line (e.g. 1.23). "
                      "Default: the newest the cluster's Kubernetes supports.")(fn)
    fn = click.option("--upstream-dir", "upstream_dirs", multiple=True,
                      type=click.Path(path_type=Path, file_okay=False),
                      help="Look for the pinned upstream release files here first (e.g. a mirror). Repeatable.")(fn)
    fn = click.option("--offline", is_flag=True, help="Never download upstream files; use vendored copies only.")(fn)
    return fn


def _release(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_release(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.brief) from None


def _kube_version(ctx: click.Context, param: click.Parameter, value: str | None) -> KubeVersion | None:
    if value is None:
        return None
    try:
        return KubeVersion.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.brief) from None


def _status(verbose: int, quiet: bool) -> Status:
    return Status(verbosity=-1 if quiet else verbose)


def build_config(*, kubeconfig: Path | None, context: str | None, state_dir: Path | None,
                 wait_timeout: float, poll_interval: float, **extra: Any) -> Config:
    snap = SnapPaths.from_environ(dict(os.environ))
    uses_microk8s = kubeconfig is None
    if state_dir is None:
        state_dir = snap.state_dir if uses_microk8s else _state_default()
    marker = None if uses_microk8s else state_dir / "hybrid-knative.enabled"
    return Config(kubeconfig=kubeconfig, context=context, snap=snap, state_dir=state_dir, marker=marker,
                  wait_timeout=wait_timeout, poll_interval=poll_interval, **extra)


def handle_errors(fn: F) -> F:
    """One clear error (brief, details, resolution) and the right exit code; traceback only with -v."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = kwargs.get("verbose", 0)
        try:
            return fn(*args, **kwargs)
        except HybridError as exc:
            if verbose:
                traceback.print_exc()
            click.echo(f"Error: {exc.brief}", err=True)
            if exc.details:
                click.echo(_indent(exc.details), err=True)
            if exc.resolution:
                click.echo(f"What to do: {exc.resolution}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted. Re-run the same command to continue where it stopped.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


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
@verbosity_options
@handle_errors
def enable(verbose: int, quiet: bool, knative: str | None, upstream_dirs: tuple[Path, ...], offline: bool,
           adopt: bool, **cluster: Any) -> None:
    """Install Knative Serving + Kourier, wait until really ready, then mark the addon enabled.

    Re-running changes nothing that is already in place; it repairs what is missing.
    """
    config = build_config(knative=knative, upstream_dirs=upstream_dirs, offline=offline, adopt=adopt, **cluster)
    status = _status(verbose, quiet)
    outcome = addon.enable(config, status)
    release = outcome.release.line if outcome.release else "?"
    click.echo(f"hybrid-knative: Knative {release} is enabled ({outcome.written} writes).")


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def disable(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Remove exactly what enable created, in reverse order (also after a partial enable)."""
    config = build_config(**cluster)
    addon.disable(config, _status(verbose, quiet))
    click.echo("hybrid-knative: disabled.")


@cli.command()
@cluster_options
@verbosity_options
@handle_errors
def status(verbose: int, quiet: bool, **cluster: Any) -> None:
    """Show whether hybrid-knative is enabled and each component's health. Exit 0 only when healthy."""
    config = build_config(**cluster)
    h = addon.health(config)
    click.echo(f"enabled: {'yes' if h.enabled else 'no'}")
    click.echo(f"knative: {h.release or '-'}")
    if h.components:
        width = max(len(c.name) for c in h.components)
        click.echo(f"{'COMPONENT'.ljust(width)}  READY  DETAIL")
        for c in h.components:
            click.echo(f"{c.name.ljust(width)}  {'yes' if c.ready else 'no ':<5}  {c.detail}")
    sys.exit(0 if h.healthy else 3)


@cli.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the rendered objects to (one YAML file per step).")
@click.option("--kubernetes-version", callback=_kube_version,
              help="Render for this Kubernetes version instead of asking the cluster (no cluster needed).")
@cluster_options
@install_options
@verbosity_options
@handle_errors
def plan(verbose: int, quiet: bool, output: Path, kubernetes_version: KubeVersion | None, knative: str | None,
         upstream_dirs: tuple[Path, ...], offline: bool, **cluster: Any) -> None:
    """Dry run: print the steps enable would take and write every object it would apply. Touches nothing."""
    config = build_config(knative=knative, upstream_dirs=upstream_dirs, offline=offline, **cluster)
    status = _status(verbose, quiet)
    version = kubernetes_version or addon.connect(config).server_version()
    release, rendered, paths = addon.write_plan(config, version, output, status)
    click.echo(f"Plan for Knative {release.line} on Kubernetes {version.minor_version}:")
    for index, (r, path) in enumerate(zip(rendered, paths, strict=True), start=1):
        click.echo(f"  {index}. {r.step.name:<22} {len(r.objects):>3} objects  {path}")


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
