"""Kourier, the networking layer: controller and Envoy gateway must become Available."""

from __future__ import annotations

from hybrid_knative.install.apply import apply_objects
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.install.render import component_objects
from hybrid_knative.install.steps._workloads import wait_deployments
from hybrid_knative.kube.objects import Manifest

NAME = "install_kourier"
TITLE = "Install Kourier networking"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "net-kourier", "kourier.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n kourier-system get pods` and "
                     "`microk8s kubectl -n knative-serving get pods -l app=net-kourier-controller`")
