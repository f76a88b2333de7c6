"""Kourier, the networking layer: controller and Envoy gateway must become Available."""

from __future__ import annotations

from hybrid_knative.install.apply import apply_objects
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.install.render import standard_transforms, upstream_objects
from hybrid_knative.kube import ready
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import wait_all

NAME = "install_kourier"
TITLE = "Install Kourier networking"


def render(rc: RenderContext) -> list[Manifest]:
    comp = rc.release.component("net-kourier")
    return standard_transforms(upstream_objects(rc, "net-kourier", "kourier.yaml"), comp.image_pins)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    checks = {
        f"Deployment {o['metadata']['namespace']}/{o['metadata']['name']}":
            ready.deployment_available(ctx.kube, o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objs if o["kind"] == "Deployment"
    }
    wait_all(checks, policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note,
             resolution="see `microk8s kubectl -n kourier-system get pods` and "
             "`microk8s kubectl -n knative-serving get pods -l app=net-kourier-controller`")
