"""Split DNS on this host for the local zone: a systemd-resolved drop-in sending *.zone to the
cluster DNS (kube-dns's cluster IP, reachable from a MicroK8s node), or — without systemd-resolved —
the exact lines to add by hand. Prints the one setting other machines on the LAN need."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hybrid_knative.dns import hostdns, ingress, state
from hybrid_knative.dns.names import domain_for
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
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
            state.save(path, dataclasses.replace(current, host_dropin=None, restart_resolved=False))
        ctx.status.detail("not in local mode: public DNS resolves the service names")
        return
    zone = domain_for("local", domain=ctx.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = ingress.cluster_dns_ip(ctx.kube)
    root = ctx.config.host_root
    if hostdns.resolved_active(root):
        dropin = hostdns.dropin_path(root)
        if current.host_dropin != str(dropin):  # remember before writing
            state.save(path, dataclasses.replace(current, host_dropin=str(dropin), restart_resolved=True))
    change = hostdns.apply(root, zone, dns_ip, ctx.runner)
    if change.path is not None:
        ctx.status.detail(f"{'wrote' if change.changed else 'unchanged'} {change.path}")
    if change.fallback:
        ctx.status.warn(change.fallback[0])
        for line in change.fallback[1:]:
            ctx.status.info(line)
    ip = ingress.current(ctx.kube)
    if ip:
        ctx.status.info(hostdns.lan_hint(zone, ip))


def remove_dropin(current: state.DnsState, runner: Runner) -> bool:
    if not current.host_dropin:
        return False
    return hostdns.remove(Path(current.host_dropin), runner, restart=current.restart_resolved)
