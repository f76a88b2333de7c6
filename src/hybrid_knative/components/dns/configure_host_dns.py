"""Split DNS on this host for the local zone: a systemd-resolved drop-in or a NetworkManager-dnsmasq file
sending *.zone to the cluster DNS (kube-dns's cluster IP, reachable from a MicroK8s node), or — on a
plain resolv.conf host, where no change is safe — the exact lines a user can add (dns/hostdns.py).
Prints the one setting other machines on the LAN need.

The file is a typed ``HostFile`` undo entry in the record, written before the file; it also carries a
reload still owed (``reload_pending``): a failed restart/reload is retried 3 times, and again by the
next enable or disable."""

from __future__ import annotations

import contextlib
import dataclasses

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
        ctx.status.skip("not needed: public DNS resolves the service names")
        return
    zone = domain_for("local", domain=ctx.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = ingress.cluster_dns_ip(ctx.kube)
    root = ctx.config.host_root
    ip = ingress.current(ctx.kube)
    resolver = hostdns.detect(root)
    ctx.status.detail(f"host DNS: {resolver.reason}")
    rel = resolver.dropin
    path = str(root / rel) if rel is not None else None
    current = ctx.record.undo(UNDO_KEY)
    if current is not None and isinstance(current.action, HostFile) and current.action.path != path:
        take_back_now(ctx, UNDO_KEY)  # the host changed resolver: take the old file back (and reload)
        current = None
    if path is None:
        lines = hostdns.fallback_lines(zone, dns_ip, ip, resolver)
        ctx.status.warn(lines[0])
        for line in lines[1:]:
            ctx.status.info(line)
        ctx.status.skip("nothing changed on this host: see above")
    else:
        owed = current is not None and isinstance(current.action, HostFile) and current.action.reload_pending
        want = HostFile(host=hostname(), path=path, restart_resolved=True, reload=resolver.reload,
                        reload_pending=True, mode=resolver.mode)
        # remember (and that a reload is owed) BEFORE writing; cleared once the reload succeeded
        ctx.record.put_undo(Undo(UNDO_KEY, want, step=NAME, component=ctx.component))
        change = hostdns.write(root, zone, dns_ip, resolver)
        ctx.status.detail(f"{'wrote' if change.changed else 'unchanged'} {change.path}")
        if change.changed or owed:
            ctx.record.replace_undo(Undo(UNDO_KEY, want, step=NAME, component=ctx.component))
            hostdns.reload(resolver.reload, ctx.runner)  # 3 attempts; on failure the entry says it is owed
        ctx.record.replace_undo(Undo(UNDO_KEY, dataclasses.replace(want, reload_pending=False), step=NAME,
                                     component=ctx.component))
    if ip:
        ctx.status.info(hostdns.lan_hint(zone, ip))


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The host file with its content, and the reload it needs (or the lines a user can add by hand)."""
    if rc.config.domain_mode != "local":
        return []
    zone = domain_for("local", domain=rc.config.domain, ingress_ip=None)
    assert zone is not None
    dns_ip = "<kube-dns cluster IP>"
    if kube is not None:
        with contextlib.suppress(HybridError):
            dns_ip = ingress.cluster_dns_ip(kube)
    root = rc.config.host_root
    resolver = hostdns.detect(root)
    lan_ip = planned_ingress_ip(rc.config.ingress_ip, kube)
    rel = resolver.dropin
    if rel is None:
        lines = "\n".join(hostdns.fallback_lines(zone, dns_ip, lan_ip, resolver))
        return [Change("note", f"nothing changed on this host ({resolver.reason}): lines a user can add", lines)]
    path = root / rel
    want = hostdns.dropin_text(zone, dns_ip, resolver.mode)
    try:
        have: str | None = path.read_text(encoding="utf-8")
    except OSError:
        have = None
    action: Action = "create" if have is None else "unchanged" if have == want else "update"
    return [Change("host-file", str(path), want, action),
            Change("command", " ".join(resolver.reload), " ".join(resolver.reload),
                   "skip" if action == "unchanged" else "run"),
            Change("note", "other machines on the LAN", hostdns.lan_hint(zone, lan_ip))]
