"""Split DNS on this host for the local zone: a systemd-resolved drop-in or a NetworkManager-dnsmasq file
sending *.zone to the cluster DNS (kube-dns's cluster IP, reachable from a MicroK8s node), or — on a
plain resolv.conf host, where no change is safe — the exact lines a user can add (dns/hostdns.py).
Prints the one setting other machines on the LAN need."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hybrid_knative.dns import hostdns, ingress, state
from hybrid_knative.dns.names import domain_for
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.system.runner import Runner

NAME = "configure_host_dns"
TITLE = "Resolve the Knative zone on this host (split DNS)"


def render(rc: RenderContext) -> list[Manifest]:
    return []  # acts on the host, not the cluster


def run(ctx: Context, objs: list[Manifest]) -> None:
    path = state.state_path(ctx.record.path)
    current = state.load(path)
    if ctx.config.domain_mode != "local":
        if current.host_dropin:
            remove_dropin(current, ctx.runner)
        if current.host_dropin or current.host_mode:
            state.save(path, dataclasses.replace(current, host_dropin=None, restart_resolved=False, host_reload=(),
                                                 reload_pending=False, host_mode=None))
        ctx.status.detail("not in local mode: public DNS resolves the service names")
        return
    zone = domain_for("local", domain=ctx.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = ingress.cluster_dns_ip(ctx.kube)
    root = ctx.config.host_root
    ip = ingress.current(ctx.kube)
    resolver = hostdns.detect(root)
    ctx.status.detail(f"host DNS: {resolver.reason}")
    rel = resolver.dropin
    dropin = str(root / rel) if rel is not None else None
    if current.host_dropin and current.host_dropin != dropin:  # the host changed resolver: take the old file back
        remove_dropin(current, ctx.runner)
        current = dataclasses.replace(current, host_dropin=None, restart_resolved=False, host_reload=(),
                                      reload_pending=False)
    if dropin is None:
        if current.host_mode != resolver.mode:
            state.save(path, dataclasses.replace(current, host_mode=resolver.mode))
        lines = hostdns.fallback_lines(zone, dns_ip, ip, resolver)
        ctx.status.warn(lines[0])
        for line in lines[1:]:
            ctx.status.info(line)
    else:
        want = dataclasses.replace(current, host_dropin=dropin, restart_resolved=True, host_reload=resolver.reload,
                                   host_mode=resolver.mode)
        change = hostdns.write(root, zone, dns_ip, resolver)
        pending = change.changed or current.reload_pending
        if want != current or pending:  # remember (and that a reload is owed) before reloading
            state.save(path, dataclasses.replace(want, reload_pending=pending))
        ctx.status.detail(f"{'wrote' if change.changed else 'unchanged'} {change.path}")
        if pending:
            hostdns.reload(resolver.reload, ctx.runner)
            state.save(path, dataclasses.replace(want, reload_pending=False))
    if ip:
        ctx.status.info(hostdns.lan_hint(zone, ip))


def remove_dropin(current: state.DnsState, runner: Runner) -> bool:
    """Delete the host file we wrote and reload its resolver (retried; the caller clears the state after)."""
    if not current.host_dropin:
        return False
    return hostdns.remove(Path(current.host_dropin), runner, restart=current.restart_resolved,
                          reload_argv=current.host_reload or hostdns.RESTART)
