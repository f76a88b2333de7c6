"""Options and error handling shared by every command module of the CLI."""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hybrid_knative.cli.types import FiniteFloatRange
from hybrid_knative.config import ClusterTarget, Config, KubeVersion, SnapPaths, parse_release
from hybrid_knative.errors import ConfigError, HybridError
from hybrid_knative.options import DOMAIN_MODES, EXTRAS, GPU_MODES, PROFILES
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
    fn = click.option("--timeout", "wait_timeout", type=FiniteFloatRange(1, 86400), default=600, show_default=True,
                      help="Seconds to wait for each group of objects to become ready.")(fn)
    fn = click.option("--poll-interval", type=FiniteFloatRange(0.001, 60), default=1.0, hidden=True)(fn)
    return fn


def install_options(fn: F) -> F:
    fn = click.option("--knative", callback=release_option, help="Knative release line (e.g. 1.23). "
                      "Default: the newest the cluster's Kubernetes supports.")(fn)
    fn = click.option("--upstream-dir", "upstream_dirs", multiple=True,
                      type=click.Path(path_type=Path, file_okay=False),
                      help="Look for the pinned upstream release files here first (e.g. a mirror). Repeatable.")(fn)
    fn = click.option("--offline", is_flag=True, help="Never download upstream files; use vendored copies only.")(fn)
    fn = dns_options(fn)
    fn = platform_options(fn)
    return fn


def platform_options(fn: F) -> F:
    fn = click.option("--eventing/--no-eventing", "eventing", default=True, show_default=True,
                      help="Install Knative Eventing (in-memory channel, MT channel broker) and a default Broker.")(fn)
    fn = click.option("--broker-namespace", default="default", show_default=True,
                      help="Namespace of the default Broker (created when missing).")(fn)
    fn = click.option("--verify/--no-verify", "verify", default=None,
                      help="Before marking enabled, prove a smoke service answers from this host and from a pod. "
                      "Default: when something changed since the last verified enable; --verify: always.")(fn)
    fn = click.option("--overlap/--no-overlap", "overlap", default=True, show_default=True,
                      envvar="HYBRID_KNATIVE_OVERLAP",
                      help="Install components that need nothing of each other (Eventing; Serving + Kourier + DNS) "
                      "side by side. --no-overlap (or HYBRID_KNATIVE_OVERLAP=0): one step after the other, "
                      "e.g. to debug.")(fn)
    fn = click.option("--gpu", type=click.Choice(GPU_MODES), default="auto", show_default=True,
                      help="GPU support: auto-detect on this node; amd (ROCm device plugin, needs the amdgpu "
                      "driver); nvidia (MicroK8s's nvidia addon); none.")(fn)
    fn = click.option("--with", "extras", multiple=True, type=click.Choice(EXTRAS),
                      help="Optional stacks (repeatable): ml = KServe + model store + Training Operator "
                      "(Kubeflow-lite, docs/ml.md); ml-gridfs = ml plus the gridfs:// model backend.")(fn)
    fn = click.option("--profile", type=click.Choice(PROFILES), default="standard", show_default=True,
                      help="Resources: upstream requests (standard), or single replicas and low requests (edge).")(fn)
    return fn


def dns_options(fn: F) -> F:
    fn = click.option("--domain-mode", type=click.Choice(DOMAIN_MODES), default="local",
                      show_default=True, help="local: a private zone resolved by the cluster and this host (offline); "
                      "magic: <ingress-ip>.sslip.io (needs internet); custom: your own wildcard domain.")(fn)
    fn = click.option("--domain", help="The zone (local mode, default hk.internal) or your wildcard domain "
                      "(custom mode, e.g. apps.example.com).")(fn)
    fn = click.option("--ingress-ip", help="The address Kourier answers on (default: a load balancer's address, "
                      "else this node's InternalIP).")(fn)
    fn = click.option("--host-root", type=click.Path(path_type=Path, file_okay=False), default=Path("/"),
                      hidden=True)(fn)
    return fn


def release_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_release(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.brief) from None


def kube_version_option(ctx: click.Context, param: click.Parameter, value: str | None) -> KubeVersion | None:
    if value is None:
        return None
    try:
        return KubeVersion.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.brief) from None


def make_status(verbose: int, quiet: bool) -> Status:
    return Status(verbosity=-1 if quiet else verbose)


def _target_fields(kubeconfig: Path | None, state_dir: Path | None) -> dict[str, Any]:
    snap = SnapPaths.from_environ(dict(os.environ))
    uses_microk8s = kubeconfig is None
    if state_dir is None:
        state_dir = snap.state_dir if uses_microk8s else _state_default()
    marker = None if uses_microk8s else state_dir / "hybrid-knative.enabled"
    return {"snap": snap, "state_dir": state_dir, "marker": marker}


def build_target(*, kubeconfig: Path | None, context: str | None, state_dir: Path | None,
                 wait_timeout: float, poll_interval: float) -> ClusterTarget:
    """The cluster a command talks to (status, doctor, disable): no install options needed."""
    return ClusterTarget(kubeconfig=kubeconfig, context=context, wait_timeout=wait_timeout,
                         poll_interval=poll_interval, **_target_fields(kubeconfig, state_dir))


def build_config(*, kubeconfig: Path | None, context: str | None, state_dir: Path | None,
                 wait_timeout: float, poll_interval: float, **extra: Any) -> Config:
    """A cluster target plus install options (enable, plan)."""
    if "verify" in extra:  # --verify (True: always), --no-verify (False), neither (None: when something changed)
        choice = extra.pop("verify")
        extra["verify"] = choice is not False
        extra["verify_always"] = choice is True
    return Config(kubeconfig=kubeconfig, context=context, wait_timeout=wait_timeout, poll_interval=poll_interval,
                  **_target_fields(kubeconfig, state_dir), **extra)


def handle_errors(fn: F) -> F:
    """One clear error (brief, details, resolution) and the right exit code; traceback only with -v."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = kwargs.get("verbose", 0)
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted. Re-run the same command to continue where it stopped.", err=True)
            sys.exit(130)
        except Exception as exc:  # every error becomes a clear message, never a traceback
            sys.exit(report_error(exc, bool(verbose)))

    return wrapper  # type: ignore[return-value]


def report_error(exc: BaseException, verbose: bool) -> int:
    """Print ``exc`` for a person (traceback only when ``verbose``); return the exit code."""
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    if isinstance(exc, HybridError):
        click.echo(f"Error: {exc.brief}", err=True)
        if exc.details:
            click.echo(indent(exc.details), err=True)
        if exc.resolution:
            click.echo(f"What to do: {exc.resolution}", err=True)
        return exc.exit_code
    if isinstance(exc, OSError):
        where = f": {str(exc.filename)[:200]}" if exc.filename is not None else ""
        click.echo(f"Error: {exc.strerror or type(exc).__name__}{where}", err=True)
        click.echo("What to do: check the path and its permissions (run with -v for details)", err=True)
        return 2 if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) or \
            exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.ENOTDIR) else 1
    if isinstance(exc, UnicodeError):
        click.echo("Error: a file or value is not valid text (UTF-8)", err=True)
        return 2
    click.echo(f"Error: unexpected {type(exc).__name__}: {str(exc)[:300]}", err=True)
    click.echo("What to do: run again with -v and report the traceback", err=True)
    return 1


class SafeGroup(click.Group):
    """A group whose every subcommand (option callbacks included) ends with a clear error, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args (still filled until 9.0)
            warnings.simplefilter("ignore", DeprecationWarning)
            args = [*getattr(ctx, "protected_args", ()), *ctx.args]
        verbose = any(a == "--verbose" or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as exc:  # the last line of defence
            ctx.exit(report_error(exc, verbose))


def indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
