"""Kourier, the networking layer: controller and Envoy gateway must become Available."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_deployments

NAME = "install_kourier"
TITLE = "Install Kourier networking"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "net-kourier", "kourier.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n kourier-system get pods` and "
                     "`microk8s kubectl -n knative-serving get pods -l app=net-kourier-controller`")
