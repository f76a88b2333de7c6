"""Give Kourier's gateway an address the node (and the LAN) can reach on ports 80/443.

A load balancer's address (e.g. the MetalLB addon) is used as is; otherwise the node's address
(or --ingress-ip) becomes the ``kourier`` Service's ``externalIPs``. Refuses, with an explanation,
when MicroK8s's ingress addon already holds ports 80/443 on that address.

With ``ingress_mode: loadbalancer`` (a cloud cluster, `clone`'s cloud profile) the step only waits for
the cloud's load balancer to give the Service an address; externalIPs are never set.
"""

from __future__ import annotations

from hybrid_knative.dns import ingress
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import retry, wait_all
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change, as_yaml, compare, live_get, planned_ingress_ip
from hybrid_knative.system.network import hostname

NAME = "configure_ingress_address"
TITLE = "Give the Kourier ingress a node-reachable address"


def render(rc: RenderContext) -> list[Manifest]:
    if rc.config.ingress_ip is None or rc.config.ingress_mode == "loadbalancer":
        return []  # the address is detected on the cluster at run time
    return [{"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": ingress.KOURIER.name, "namespace": ingress.KOURIER.namespace},
             "spec": {"externalIPs": [rc.config.ingress_ip]}}]


def run(ctx: Context, objs: list[Manifest]) -> None:
    if ctx.config.ingress_mode == "loadbalancer":
        def has_address() -> str | None:
            svc = ctx.kube.get(ingress.KOURIER)
            return None if svc is not None and ingress.load_balancer_ip(svc) else "no load-balancer address yet"

        wait_all({str(ingress.KOURIER): has_address}, policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note,
                 resolution="the cluster's load balancer did not give Kourier an address: check the cloud's "
                 "load-balancer quota and `kubectl -n kourier-system describe service kourier`")
        ctx.status.info(f"Ingress address: {ingress.current(ctx.kube)} (load balancer)")
        return
    address = ingress.choose(ctx.kube, override=ctx.config.ingress_ip, hostname=hostname())
    ingress.check_port_conflict(ctx.kube, address)
    if address.needs_external_ip:
        svc = ctx.kube.get(ingress.KOURIER) or {}
        if ((svc.get("spec") or {}).get("externalIPs") or []) != [address.ip]:
            retry(lambda: ctx.kube.merge_patch(ingress.KOURIER, {"spec": {"externalIPs": [address.ip]}}),
                  policy=ctx.waits, what=f"patch {ingress.KOURIER}", stats=ctx.stats)
            ctx.status.detail(f"patched {ingress.KOURIER}: externalIPs [{address.ip}]")
    ctx.status.info(f"Ingress address: {address.ip} ({address.source})")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """Kourier's externalIPs (unless a load balancer already gives it an address)."""
    if rc.config.ingress_mode == "loadbalancer":
        return [Change("note", str(ingress.KOURIER), "waits for the cloud's load balancer to give it an address",
                       "unchanged")]
    live = live_get(kube, ingress.KOURIER)
    if live is not None and ingress.load_balancer_ip(live):
        return [Change("note", str(ingress.KOURIER), f"load balancer address {ingress.load_balancer_ip(live)}: "
                       "used as is", "unchanged")]
    patch = {"spec": {"externalIPs": [planned_ingress_ip(rc.config.ingress_ip, kube)]}}
    return [Change("patch", f"{ingress.KOURIER} (externalIPs)", as_yaml(patch),
                   "" if kube is None else compare(patch, live) if live is not None else "update")]
