"""Split DNS on this host for the local zone: a systemd-resolved drop-in sending *.zone to the
cluster DNS (kube-dns's cluster IP, reachable from a MicroK8s node), or — without systemd-resolved —
the exact lines to add by hand. Prints the one setting other machines on the LAN need."""

from __future__ import annotations

import contextlib

from hybrid_knative.dns import hostdns, ingress
from hybrid_knative.dns.names import domain_for
from hybrid_knative.errors import HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Action, Change, planned_ingress_ip
from hybrid_knative.platform.record import HostFile, Undo
from hybrid_knative.platform.undo import take_back_now
from hybrid_knative.system.network import hostname

NAME = "configure_host_dns"
TITLE = "Resolve the Knative zone on this host (split DNS)"
UNDO_KEY = "host-file resolved drop-in"


def render(rc: RenderContext) -> list[Manifest]:
    return []  # acts on the host, not the cluster


def run(ctx: Context, objs: list[Manifest]) -> None:
    if ctx.config.domain_mode != "local":
        take_back_now(ctx, UNDO_KEY)
        ctx.status.detail("not in local mode: public DNS resolves the service names")
        return
    zone = domain_for("local", domain=ctx.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = ingress.cluster_dns_ip(ctx.kube)
    root = ctx.config.host_root
    if hostdns.resolved_active(root):  # remember before writing
        ctx.record.put_undo(Undo(UNDO_KEY, HostFile(host=hostname(), path=str(hostdns.dropin_path(root)),
                                                    restart_resolved=True), step=NAME, component=ctx.component))
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


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The systemd-resolved drop-in with its content, and the restart it needs (or the manual lines)."""
    if rc.config.domain_mode != "local":
        return []
    zone = domain_for("local", domain=rc.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = "<kube-dns cluster IP>"
    if kube is not None:
        with contextlib.suppress(HybridError):
            dns_ip = ingress.cluster_dns_ip(kube)
    root = rc.config.host_root
    if not hostdns.resolved_active(root):
        lines = "\n".join(hostdns.fallback_lines(zone, dns_ip))
        return [Change("note", "no systemd-resolved on this host: lines to add by hand", lines)]
    path = hostdns.dropin_path(root)
    want = hostdns.dropin_text(zone, dns_ip)
    try:
        have: str | None = path.read_text(encoding="utf-8")
    except OSError:
        have = None
    action: Action = "create" if have is None else "unchanged" if have == want else "update"
    lan = hostdns.lan_hint(zone, planned_ingress_ip(rc.config.ingress_ip, kube))
    return [Change("host-file", str(path), want, action),
            Change("command", " ".join(hostdns.RESTART), " ".join(hostdns.RESTART),
                   "skip" if action == "unchanged" else "run"),
            Change("note", "other machines on the LAN", lan)]
