"""Knative Serving CRDs, then wait until every CRD is Established."""

from __future__ import annotations

from hybrid_knative.install.apply import apply_objects
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.install.render import component_objects
from hybrid_knative.install.steps._workloads import wait_crds
from hybrid_knative.kube.objects import Manifest

NAME = "install_serving_crds"
TITLE = "Install Knative Serving CRDs"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "knative-serving", "serving-crds.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_crds(ctx, objs)
