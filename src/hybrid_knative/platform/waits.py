"""Shared waits of the install steps: every Deployment of a step Available, then webhook endpoints."""

from __future__ import annotations

from hybrid_knative.kube import ready
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import wait_all
from hybrid_knative.platform.context import Context


def wait_crds(ctx: Context, objs: list[Manifest]) -> None:
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
    if names:
        wait_all({f"CRD {n}": ready.crd_established(ctx.kube, n) for n in names}, policy=ctx.waits,
                 stats=ctx.stats, on_progress=ctx.status.note,
                 resolution="the API server has not accepted the CRDs; check `microk8s kubectl get crd`")


def wait_deployments(ctx: Context, objs: list[Manifest], *, resolution: str) -> None:
    checks = {
        f"Deployment {o['metadata']['namespace']}/{o['metadata']['name']}":
            ready.deployment_available(ctx.kube, o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objs if o["kind"] == "Deployment"
    }
    if checks:
        wait_all(checks, policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note, resolution=resolution)


def wait_webhook_endpoints(ctx: Context, namespace: str, service: str, *, resolution: str) -> None:
    wait_all({f"Service {namespace}/{service} endpoints": ready.service_endpoints_ready(ctx.kube, namespace, service)},
             policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note, resolution=resolution)
