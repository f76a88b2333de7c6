"""Knative Serving CRDs, then wait until every CRD is Established."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_crds

NAME = "install_serving_crds"
TITLE = "Install Knative Serving CRDs"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "knative-serving", "serving-crds.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_crds(ctx, objs)
