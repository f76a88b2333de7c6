"""`hub start`, `token create|list|revoke`, `join`, `agent`, `nodes [list|approve ID]`: the edge join toolkit."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import click
import yaml

from hybrid_knative.cli.common import handle_errors, make_status, verbosity_options
from hybrid_knative.cli.types import FiniteFloatRange
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import ConfigError
from hybrid_knative.join import agent as agent_mod
from hybrid_knative.join.enrolment import parse_enrolment, parse_fingerprint, parse_hub_address, parse_token
from hybrid_knative.join.state import HubState, parse_labels
from hybrid_knative.system.files import atomic_write

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip().lower())
    if not match or int(match[1]) <= 0:
        raise ConfigError(f"not a duration: {text!r}", resolution="use e.g. 90s, 30m, 24h or 7d")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > 366 * 86400:
        raise ConfigError(f"duration too long: {text!r} (at most 366d)")
    return seconds


def default_hub_dir() -> Path:
    env = dict(os.environ)
    if env.get("SNAP_NAME") == "hybrid-knative" and env.get("SNAP_COMMON"):
        return Path(env["SNAP_COMMON"]) / "hub"
    return SnapPaths.from_environ(env).snap_common / "hybrid-knative" / "hub"


def state_dir_option(fn: Any) -> Any:
    return click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                        envvar="HYBRID_KNATIVE_HUB_DIR", show_envvar=True,
                        help="The hub's state folder (CA, tokens, enrolments, audit log). "
                        "Default: $SNAP_COMMON/hybrid-knative/hub of MicroK8s.")(fn)


def _hub_state(state_dir: Path | None) -> HubState:
    return HubState(state_dir or default_hub_dir())


def _primary_ipv4() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # UDP connect sends nothing; it only picks the route
            address: str = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


# --- hub ---------------------------------------------------------------------------------------------


@click.group()
def hub() -> None:
    """The enrolment hub on the control plane (HTTPS + mDNS)."""


@hub.command("start")
@state_dir_option
@click.option("--listen", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", type=click.IntRange(0, 65535), default=9443, show_default=True)
@click.option("--advertise", multiple=True, help="Hub address put in enrolment strings and mDNS (repeatable). "
              "Default: the address of the default route.")
@click.option("--cluster-name", help="Name shown in mDNS and used by `join --discover --cluster`. Default: hostname.")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False),
              help="Kubeconfig used to label nodes. Default: MicroK8s's.")
@click.option("--context", help="Kubeconfig context.")
@click.option("--no-mdns", is_flag=True, help="Do not advertise over mDNS.")
@click.option("--rate", type=FiniteFloatRange(0.01, 1000), default=2.0, show_default=True,
              help="Enrolment requests per second allowed per source address.")
@click.option("--burst", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="Requests a source may make at once before --rate applies.")
@click.option("--add-node-ttl", type=click.IntRange(60, 604800), default=600, show_default=True,
              help="Lifetime (seconds) of the MicroK8s join token handed to each device.")
@click.option("--join-pool", "join_pool", type=click.IntRange(0, 256), default=64, show_default=True,
              help="MicroK8s join tokens (single use) the hub creates ahead, so that a burst of enrolments "
                   "does not wait on `microk8s add-node` (size it for the largest burst of devices enrolling at once; "
                   "expired ones are replaced, about one add-node per 7 s at 64); 0: one add-node per enrolment.")
@click.option("--join-pool-margin", type=click.IntRange(10, 604800), default=None,
              help="A pooled join token is handed out only while it has at least this many seconds of its "
                   "--add-node-ttl left (default: a third of it, at most 180).")
@click.option("--node-timeout", type=FiniteFloatRange(1, 86400), default=1800, show_default=True,
              help="How long to wait for an enrolled device's Node before giving up labelling it.")
@click.option("--poll-interval", type=FiniteFloatRange(0.01, 60), default=2.0, hidden=True)
@click.option("--microk8s", "microk8s_cmd", default="microk8s", hidden=True)
@click.option("--max-connections", type=click.IntRange(1, 900), default=256, show_default=True,
              help="Open connections the hub accepts in total (keep well below its fd limit, 1024 under systemd).")
@click.option("--max-per-source", type=click.IntRange(1, 900), default=16, show_default=True,
              help="Open connections the hub accepts from one source address (devices behind one NAT share it).")
@click.option("--cluster-tokens-file", type=click.Path(path_type=Path, dir_okay=False), hidden=True,
              default=Path("/var/snap/microk8s/current/credentials/cluster-tokens.txt"),
              help="MicroK8s's join token file (the hub retires the unused join tokens it issued from it).")
@verbosity_options
@handle_errors
def hub_start(verbose: int, quiet: bool, state_dir: Path | None, listen: str, port: int, advertise: tuple[str, ...],
              cluster_name: str | None, kubeconfig: Path | None, context: str | None, no_mdns: bool, rate: float,
              burst: int, add_node_ttl: int, join_pool: int, join_pool_margin: int | None, node_timeout: float,
              poll_interval: float, microk8s_cmd: str, max_connections: int, max_per_source: int,
              cluster_tokens_file: Path) -> None:
    """Serve enrolments until interrupted (SIGINT/SIGTERM)."""
    import logging

    from hybrid_knative.join.hub import Hub, HubSettings, serve

    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING, format="%(levelname)s %(message)s")
    addresses = tuple(parse_hub_address(f"{a}:1").host for a in advertise)
    if not addresses:
        guess = listen if listen not in ("0.0.0.0", "::") else _primary_ipv4()  # noqa: S104
        if guess is None:
            raise ConfigError("cannot tell which address devices should use to reach the hub",
                              resolution="pass --advertise IP (the hub's LAN address)")
        addresses = (guess,)
    name = cluster_name or socket.gethostname().split(".")[0] or "hybrid-knative"
    if not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,62}", name):
        raise ConfigError(f"invalid --cluster-name {name[:80]!r}", resolution="letters, digits, '-', '_', '.'")
    settings = HubSettings(state_dir=state_dir or default_hub_dir(), cluster_name=name, listen=listen, port=port,
                           advertise=addresses, kubeconfig=kubeconfig, context=context, microk8s=microk8s_cmd,
                           add_node_ttl=add_node_ttl, pool_size=join_pool, pool_margin=join_pool_margin,
                           node_timeout=node_timeout, poll_interval=poll_interval,
                           rate=rate, burst=burst, mdns=not no_mdns, cluster_tokens_file=cluster_tokens_file,
                           max_connections=max_connections, max_per_source=min(max_per_source, max_connections))
    status = make_status(verbose, quiet)
    with status.step(f"start the hub for cluster {name}"):
        running = serve(Hub(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"hub listening on {listen}:{running.port}; devices use "
               f"{', '.join(f'{a}:{running.port}' for a in addresses)}")
    click.echo(f"CA fingerprint sha256:{running.hub.pki.fingerprint}", nl=True)
    sys_stdout_flush()
    if settings.pool_size:
        deadline = time.monotonic() + 60
        ready = False
        while not ready and not stop.is_set() and time.monotonic() < deadline and not running.hub.pool.failures:
            ready = running.hub.pool.wait_ready(timeout=0.5)
        if ready:
            click.echo(f"join token pool ready ({settings.pool_size} single-use tokens)")
        elif not stop.is_set():
            click.echo("warning: the join token pool is not full yet (does `microk8s add-node` work?); "
                       "enrolments create their join tokens one by one meanwhile", err=True)
        sys_stdout_flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        running.close()
        click.echo("hub stopped")


def sys_stdout_flush() -> None:
    import sys

    sys.stdout.flush()


# --- tokens ------------------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """Join tokens: create (prints an hk1: enrolment string), list, revoke."""


@token.command("create")
@state_dir_option
@click.option("--ttl", default="24h", show_default=True, help="Lifetime, e.g. 30m, 24h, 7d.")
@click.option("--uses", type=click.IntRange(1, 100000), default=1, show_default=True, help="How many devices.")
@click.option("--labels", "labels", multiple=True, help="Node labels KEY=VALUE (repeatable or comma-separated).")
@click.option("--approval", is_flag=True, help="Each device waits until `nodes approve ID`.")
@click.option("--description", default="", help="A note shown in `token list`.")
@click.option("--hub", "hubs", multiple=True, help="Hub address HOST:PORT to embed (repeatable). Default: the "
              "running hub's advertised addresses.")
@click.option("--launch-config", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a MicroK8s launch configuration (0600) that joins on first boot.")
@click.option("--microk8s", "microk8s_cmd", default="microk8s", hidden=True)
@verbosity_options
@handle_errors
def token_create(verbose: int, quiet: bool, state_dir: Path | None, ttl: str, uses: int, labels: tuple[str, ...],
                 approval: bool, description: str, hubs: tuple[str, ...], launch_config: Path | None,
                 microk8s_cmd: str) -> None:
    """Create a token and print its enrolment string (the secret is shown once, never stored)."""
    from hybrid_knative.join.enrolment import Enrolment, format_enrolment
    from hybrid_knative.join.pki import ensure_pki

    seconds = parse_duration(ttl)
    parsed_labels = parse_labels(labels)
    folder = state_dir or default_hub_dir()
    info_path = folder / "hub.json"
    info: dict[str, Any] = {}
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
    addresses = tuple(parse_hub_address(h) for h in hubs) or tuple(parse_hub_address(a)
                                                                   for a in info.get("addresses", []))
    if not addresses:
        raise ConfigError("no hub address known yet", resolution="start the hub first (`hybrid-knative hub start`), "
                          "or pass --hub HOST:PORT")
    if launch_config is not None and launch_config.exists() and not launch_config.is_file():
        raise ConfigError(f"--launch-config {str(launch_config)[:200]} exists and is not a regular file")
    pki = ensure_pki(folder / "pki", cluster_name=str(info.get("cluster", "hybrid-knative")))
    state = HubState(folder)
    tok = state.create_token(ttl=seconds, max_uses=uses, labels=parsed_labels, approval=approval,
                             description=description)
    if launch_config is not None:
        from hybrid_knative.join.hub import Hub, HubSettings

        settings = HubSettings(state_dir=folder, cluster_name=str(info.get("cluster", "hybrid-knative")),
                               advertise=(addresses[0].host,), microk8s=microk8s_cmd, mdns=False)
        try:
            config = Hub(settings).launch_config(tok.token_id, seconds)
            atomic_write(launch_config, "---\n" + yaml.safe_dump(config, sort_keys=False), mode=0o600)
        except BaseException:
            state.delete_token(tok.token_id)  # never leave a valid token nobody was shown
            raise
        make_status(verbose, quiet).info(f"wrote the launch configuration {launch_config} (keep it secret: "
                                         "it holds a MicroK8s join token)")
    click.echo(format_enrolment(Enrolment(tok, addresses, pki.fingerprint)))


@token.command("list")
@state_dir_option
@handle_errors
def token_list(state_dir: Path | None) -> None:
    """List tokens (ids only; secrets are never stored)."""
    now = time.time()
    tokens = _hub_state(state_dir).tokens()
    click.echo(f"{'ID':<16}  {'STATUS':<8} {'USES':>9}  {'EXPIRES (UTC)':<17} {'APPROVAL':<8} LABELS")
    for t in tokens:
        uses = f"{t.uses}/{t.max_uses if t.max_uses is not None else '∞'}"
        expires = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.expires)) if t.expires else "never"
        labels = ",".join(f"{k}={v}" for k, v in sorted(t.labels.items())) or "-"
        click.echo(f"{t.token_id:<16}  {t.status(now):<8} {uses:>9}  {expires:<17} "
                   f"{'yes' if t.approval else 'no':<8} {labels}")


@token.command("revoke")
@state_dir_option
@click.argument("token_id")
@handle_errors
def token_revoke(state_dir: Path | None, token_id: str) -> None:
    """Revoke a token: further enrolments with it are refused."""
    _hub_state(state_dir).revoke_token(token_id.strip())
    click.echo(f"token {token_id.strip()} revoked")


# --- nodes -------------------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@state_dir_option
@click.pass_context
def nodes(ctx: click.Context, state_dir: Path | None) -> None:
    """Enrolled devices (`nodes` = `nodes list`); `nodes approve ID`."""
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir
    if ctx.invoked_subcommand is None:
        ctx.invoke(nodes_list, state_dir=state_dir)


@nodes.command("list")
@state_dir_option
@click.pass_context
@handle_errors
def nodes_list(ctx: click.Context, state_dir: Path | None) -> None:
    """List enrolments and their state (pending, approved, issued, joined)."""
    folder = state_dir or (ctx.obj or {}).get("state_dir")
    items = _hub_state(folder).enrolments()
    click.echo(f"{'ID':<12}  {'NODE':<24} {'ARCH':<7} {'STATE':<9} {'TOKEN':<16}  SOURCE")
    for e in items:
        click.echo(f"{e.enrolment_id:<12}  {e.node_name[:24]:<24} {e.arch:<7} {e.state:<9} "
                   f"{e.token_id:<16}  {e.source}")


@nodes.command("approve")
@state_dir_option
@click.argument("enrolment_id")
@click.pass_context
@handle_errors
def nodes_approve(ctx: click.Context, state_dir: Path | None, enrolment_id: str) -> None:
    """Approve a pending enrolment; the device's next try gets its join URL."""
    folder = state_dir or (ctx.obj or {}).get("state_dir")
    info = _hub_state(folder).approve(enrolment_id.strip())
    click.echo(f"enrolment {info.enrolment_id} ({info.node_name}) is {info.state}")


# --- device ------------------------------------------------------------------------------------------


def device_options(fn: Any) -> Any:
    fn = click.option("--discover", is_flag=True, help="Find the hub by mDNS (needs --token).")(fn)
    fn = click.option("--token", "token_text", help="Join token ID.SECRET (with --discover).")(fn)
    fn = click.option("--cluster", help="With --discover: the hub's cluster name, when several answer.")(fn)
    fn = click.option("--ca-fingerprint", help="With --discover: pin the hub's CA (sha256:HEX).")(fn)
    fn = click.option("--enrolment-file", type=click.Path(path_type=Path, dir_okay=False),
                      envvar="HYBRID_KNATIVE_ENROLMENT_FILE", show_envvar=True,
                      help="Read the hk1: enrolment string from this file (e.g. written by the snap's configure "
                      "hook) instead of the command line.")(fn)
    fn = click.option("--interface-address", "interfaces", multiple=True,
                      help="Browse mDNS on this IPv4 address only (repeatable). Default: all interfaces.")(fn)
    fn = click.option("--discovery-timeout", type=FiniteFloatRange(0.1, 600), default=10, show_default=True)(fn)
    fn = click.option("--node-name", help="The name kubelet registers (default: the hostname).")(fn)
    fn = click.option("--machine-id", help="Device identity (default: /etc/machine-id).", hidden=True)(fn)
    fn = click.option("--host-root", type=click.Path(path_type=Path, file_okay=False), default=Path("/"),
                      help="Where the host's /proc, /sys, /dev and /etc are (for containerised agents).",
                      hidden=True)(fn)
    fn = click.option("--backoff-initial", type=FiniteFloatRange(0.001, 600), default=1.0, hidden=True)(fn)
    fn = click.option("--backoff-max", type=FiniteFloatRange(0.001, 3600), default=60.0, hidden=True)(fn)
    fn = click.option("--microk8s", "microk8s_cmd", default="microk8s", hidden=True)(fn)
    return fn


def _agent_settings(enrolment_text: str | None, *, timeout: float | None, discover: bool, token_text: str | None,
                    cluster: str | None, ca_fingerprint: str | None, enrolment_file: Path | None,
                    interfaces: tuple[str, ...], discovery_timeout: float, node_name: str | None,
                    machine_id: str | None, host_root: Path, backoff_initial: float, backoff_max: float,
                    microk8s_cmd: str) -> agent_mod.AgentSettings:
    if enrolment_file is not None:
        if enrolment_text:
            raise ConfigError("give the enrolment string or --enrolment-file, not both")
        try:
            enrolment_text = agent_mod.read_bounded(enrolment_file, 4096).strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {enrolment_file}: {exc.strerror}") from None
    if discover == bool(enrolment_text):
        raise ConfigError("give an hk1: enrolment string, or --discover with --token",
                          resolution="hybrid-knative join hk1:…  or  hybrid-knative join --discover --token ID.SECRET")
    if discover and not token_text:
        raise ConfigError("--discover needs --token ID.SECRET")
    if not discover and (token_text or cluster or ca_fingerprint):
        raise ConfigError("--token, --cluster and --ca-fingerprint go with --discover")
    if node_name is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", node_name):
        raise ConfigError(f"invalid --node-name {node_name[:80]!r}", resolution="lowercase letters, digits and '-'")
    return agent_mod.AgentSettings(
        enrolment=parse_enrolment(enrolment_text) if enrolment_text else None,
        token=parse_token(token_text) if discover and token_text else None,
        cluster=cluster, ca_fingerprint=parse_fingerprint(ca_fingerprint) if ca_fingerprint else None,
        snap=SnapPaths.from_environ(dict(os.environ)), microk8s=microk8s_cmd, host_root=host_root,
        node_name=node_name, machine_id=machine_id, interfaces=agent_mod.parse_interfaces(interfaces),
        discovery_timeout=discovery_timeout, timeout=timeout,
        backoff=agent_mod.Backoff(initial=backoff_initial, maximum=max(backoff_initial, backoff_max)))


@click.command("join")
@click.argument("enrolment", required=False)
@device_options
@click.option("--timeout", type=FiniteFloatRange(1, 86400), default=600, show_default=True,
              help="Give up after this many seconds of retrying.")
@verbosity_options
@handle_errors
def join(verbose: int, quiet: bool, enrolment: str | None, timeout: float, **options: Any) -> None:
    """Join this device to the cluster as a MicroK8s worker (one-shot; retries with backoff until --timeout).

    \b
      sudo hybrid-knative join hk1:…
      sudo hybrid-knative join --discover --token ID.SECRET
    """
    settings = _agent_settings(enrolment, timeout=timeout, **options)
    outcome = agent_mod.run(settings, status=make_status(verbose, quiet))
    _report(outcome)


@click.command("agent")
@click.argument("enrolment", required=False)
@device_options
@click.option("--timeout", type=FiniteFloatRange(1, 10 * 365 * 86400), default=None,
              help="Give up after this many seconds. Default: never.")
@verbosity_options
@handle_errors
def agent(verbose: int, quiet: bool, enrolment: str | None, timeout: float | None, **options: Any) -> None:
    """Daemon mode: keep trying (exponential backoff with jitter) until this device has joined, then exit 0."""
    settings = _agent_settings(enrolment, timeout=timeout, **options)
    outcome = agent_mod.run(settings, status=make_status(verbose, quiet))
    _report(outcome)


def _report(outcome: agent_mod.JoinOutcome) -> None:
    if outcome.already_joined:
        click.echo(f"already joined: {outcome.node_name}")
    else:
        click.echo(f"joined: {outcome.node_name} (enrolment {outcome.enrolment_id} via {outcome.hub})")


__all__ = ["agent", "hub", "join", "nodes", "token"]

