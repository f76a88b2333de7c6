"""CoreDNS answers every name of the local zone with the Kourier ingress address, so pods resolve
service URLs too. One server block in kube-system/coredns's Corefile, recognised by its marker comment;
everything else in the Corefile is left byte for byte. A re-run re-adds the block after `microk8s
enable dns` rewrote the Corefile; `disable` cuts exactly this block out again."""

from __future__ import annotations

from hybrid_knative.dns import corefile, ingress
from hybrid_knative.dns.names import domain_for
from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import retry
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change, is_ip, live_get, planned_ingress_ip, unified
from hybrid_knative.platform.record import CorefileBlock, Undo
from hybrid_knative.platform.undo import take_back_now

NAME = "configure_cluster_dns"
TITLE = "Answer the Knative zone in the cluster DNS (CoreDNS)"
KEY = "Corefile"
UNDO_KEY = "corefile-block kube-system/coredns"
DOC_IP = "192.0.2.1"


def render(rc: RenderContext) -> list[Manifest]:
    return []  # a structural edit of the live Corefile, made at run time


def run(ctx: Context, objs: list[Manifest]) -> None:
    if ctx.config.domain_mode != "local":
        # public DNS answers magic and custom names; take out a block an earlier local-mode run added
        take_back_now(ctx, UNDO_KEY)
        ctx.status.detail("not in local mode: CoreDNS left as it is")
        return
    zone = domain_for("local", domain=ctx.config.domain, ingress_ip=None)
    ip = ingress.current(ctx.kube)
    assert zone is not None
    if ip is None:
        raise PermanentError("the Kourier ingress has no address yet",
                             resolution="run `sudo hybrid-knative repair`: the ingress address step sets it")
    live = ctx.kube.get(ingress.COREDNS)
    if live is None or KEY not in (live.get("data") or {}):
        raise PermanentError("the cluster DNS is not enabled: ConfigMap kube-system/coredns has no Corefile",
                             resolution="enable MicroK8s's DNS addon (`sudo microk8s enable dns`), then "
                             "`sudo hybrid-knative repair`")
    text = str(live["data"][KEY])
    wanted = corefile.ensure(text, zone, ip)
    # remember before writing: a crash in between must still be undone
    ctx.record.put_undo(Undo(UNDO_KEY, CorefileBlock(ingress.COREDNS.namespace or "kube-system", ingress.COREDNS.name),
                             step=NAME, component=ctx.component))
    if wanted == text:
        ctx.status.detail(f"unchanged {ingress.COREDNS}: the {zone} block is in place")
        return
    retry(lambda: ctx.kube.merge_patch(ingress.COREDNS, {"data": {KEY: wanted}}), policy=ctx.waits,
          what=f"patch {ingress.COREDNS}", stats=ctx.stats)
    ctx.status.detail(f"patched {ingress.COREDNS}: server block for {zone} → {ip}")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The CoreDNS server block: the resulting Corefile and a diff against the live one."""
    if rc.config.domain_mode != "local":
        return []
    zone = domain_for("local", domain=rc.config.domain, ingress_ip=None)
    assert zone is not None
    ip = planned_ingress_ip(rc.config.ingress_ip, kube)
    known = is_ip(ip)
    stand_in = ip if known else DOC_IP  # an address of TEST-NET-1 stands for one known only at run time

    def shown(text: str) -> str:
        return text if known else text.replace(DOC_IP, ip)

    live = live_get(kube, ingress.COREDNS)
    text = ((live or {}).get("data") or {}).get(KEY)
    target = f"{ingress.COREDNS} ({KEY}: server block for {zone} → {ip})"
    if not isinstance(text, str):
        return [Change("patch", target, shown(corefile.zone_block(zone, stand_in)), "" if kube is None else "update")]
    wanted = corefile.ensure(text, zone, stand_in)
    return [Change("patch", target, shown(wanted), "unchanged" if wanted == text else "update",
                   shown(unified(text, wanted, KEY)))]
