"""`hybrid-knative bootstrap`: install MicroK8s if missing, register the addon repository, enable, verify."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hybrid_knative import bootstrap as boot
from hybrid_knative.cli.common import handle_errors, make_status, verbosity_options
from hybrid_knative.errors import ConfigError

# enable flags that make no sense through `microk8s enable` (MicroK8s's own cluster and paths are used)
NOT_FOR_MICROK8S = ("--kubeconfig", "--context", "--state-dir")
DEFAULT_REPO_COPY = Path("/var/lib/hybrid-knative/addon-repo")


def check_enable_args(args: tuple[str, ...], ctx: click.Context) -> tuple[str, ...]:
    """Validate the pass-through flags with the `enable` command's own parser (nothing runs); the enable
    command is the sibling of this one in the parent group (no import of cli.main: it imports us)."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in NOT_FOR_MICROK8S:
            raise ConfigError(f"{name} cannot be used with bootstrap",
                              resolution="bootstrap enables hybrid-knative on this host's MicroK8s; "
                              "use `hybrid-knative enable` for another cluster")
        if name in ("-h", "--help", "--usage"):
            raise ConfigError(f"{name} is not an enable flag", resolution="see `hybrid-knative enable --help`")
    group = ctx.parent.command if ctx.parent is not None else None
    command = group.commands.get("enable") if isinstance(group, click.Group) else None
    if command is None:
        raise ConfigError("bootstrap must run as `hybrid-knative bootstrap`", resolution="see `hybrid-knative --help`")
    try:
        command.make_context("enable", list(args), resilient_parsing=False)
    except click.UsageError as exc:
        raise ConfigError(f"bad enable flag: {exc.format_message()}",
                          resolution="bootstrap passes every flag it does not know itself to `microk8s enable "
                          "hybrid-knative`; see `hybrid-knative enable --help` for them") from None
    return args


def _channel(ctx: click.Context, param: click.Parameter, value: str | None) -> boot.Channel | None:
    if value is None:
        return None
    try:
        return boot.Channel.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(f"{exc.brief} ({exc.resolution})") from None


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "allow_interspersed_args": True})
@click.option("--channel", callback=_channel, metavar="TRACK/RISK[/BRANCH]",
              help=f"MicroK8s channel to install when MicroK8s is missing. Default: {boot.DEFAULT_CHANNEL}.")
@click.option("--ready-timeout", type=click.IntRange(1, 86400), default=600, show_default=True,
              help="Seconds to wait for MicroK8s to become ready.")
@click.option("--addon-repo", type=click.Path(path_type=Path, file_okay=False),
              help="The hybrid-knative addon repository (a git checkout) to register. Default: the snap's "
              "own ($SNAP/addon-repo); needed outside the snap.")
@verbosity_options
@click.pass_context
@handle_errors
def bootstrap(ctx: click.Context, verbose: int, quiet: bool, channel: boot.Channel | None, ready_timeout: int,
              addon_repo: Path | None) -> None:
    """From a fresh host to a live Knative service: install MicroK8s if missing, wait until it is ready,
    register the hybrid-knative addon repository, run `microk8s enable hybrid-knative ENABLE-FLAGS…`,
    verify it and print the URL of the smoke service. Run with sudo. Re-running does only what is missing.

    \b
    Any other flag is an enable flag and goes to `microk8s enable hybrid-knative`, e.g.:
      sudo hybrid-knative bootstrap --channel 1.35/stable --knative 1.23
    """
    enable_args = check_enable_args(tuple(ctx.args), ctx)
    snap = os.environ.get("SNAP")
    if addon_repo is None:
        if not snap:
            raise ConfigError("outside the hybrid-knative snap, bootstrap needs --addon-repo",
                              resolution="pass --addon-repo with a git checkout of the hybrid-knative repository, "
                              "or use the snap: `sudo snap install hybrid-knative --classic`")
        addon_repo = Path(snap) / "addon-repo"
    common = os.environ.get("SNAP_COMMON") if snap else None
    opts = boot.Options(
        channel=channel or boot.Channel.parse(boot.DEFAULT_CHANNEL), channel_given=channel is not None,
        enable_args=enable_args, addon_repo=addon_repo,
        repo_copy=Path(common) / "addon-repo" if common else DEFAULT_REPO_COPY,
        ready_timeout=ready_timeout,
    )
    status = make_status(verbose, quiet)
    outcome = boot.bootstrap(opts, status)
    if outcome.url:
        click.echo(f"hybrid-knative is ready: {outcome.url}")
    else:
        click.echo("hybrid-knative is enabled; `sudo hybrid-knative status` shows its health.")
