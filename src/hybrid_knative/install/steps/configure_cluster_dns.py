"""CoreDNS answers every name of the local zone with the Kourier ingress address, so pods resolve
service URLs too. One server block in kube-system/coredns's Corefile, recognised by its marker comment;
everything else in the Corefile is left byte for byte. A re-run re-adds the block after `microk8s
enable dns` rewrote the Corefile; `disable` cuts exactly this block out again."""

from __future__ import annotations

import dataclasses

from hybrid_knative.dns import corefile, ingress, state
from hybrid_knative.dns.names import domain_for
from hybrid_knative.errors import PermanentError
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry

NAME = "configure_cluster_dns"
TITLE = "Answer the Knative zone in the cluster DNS (CoreDNS)"
KEY = "Corefile"


def render(rc: RenderContext) -> list[Manifest]:
    return []  # a structural edit of the live Corefile, made at run time


def run(ctx: Context, objs: list[Manifest]) -> None:
    path = state.state_path(ctx.record.path)
    current = state.load(path)
    if ctx.config.domain_mode != "local":
        # public DNS answers magic and custom names; take out a block an earlier local-mode run added
        if current.corefile:
            remove_block(ctx.kube, policy=ctx.waits, stats=ctx.stats)
            state.save(path, dataclasses.replace(current, corefile=False))
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
    if not current.corefile:  # remember before writing: a crash in between must still be undone
        state.save(path, dataclasses.replace(current, corefile=True))
    if wanted == text:
        ctx.status.detail(f"unchanged {ingress.COREDNS}: the {zone} block is in place")
        return
    retry(lambda: ctx.kube.merge_patch(ingress.COREDNS, {"data": {KEY: wanted}}), policy=ctx.waits,
          what=f"patch {ingress.COREDNS}", stats=ctx.stats)
    ctx.status.detail(f"patched {ingress.COREDNS}: server block for {zone} → {ip}")


def remove_block(kube: KubeApi, *, policy: WaitPolicy, stats: WaitStats) -> bool:
    """Cut our server block out of the live Corefile (the ConfigMap itself stays); True if written."""
    live = kube.get(ingress.COREDNS)
    text = ((live or {}).get("data") or {}).get(KEY)
    if not isinstance(text, str):
        return False
    left = corefile.without_ours(text)
    if left == text:
        return False
    retry(lambda: kube.merge_patch(ingress.COREDNS, {"data": {KEY: left}}), policy=policy,
          what=f"restore {ingress.COREDNS}", stats=stats)
    return True
