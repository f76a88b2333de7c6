"""KServe's CRDs (the InferenceService CRD is ~1.9 MB: server-side apply, as every apply here)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import kserve
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.waits import wait_crds

NAME = "install_kserve_crds"
TITLE = "Install KServe's CRDs"


def render(rc: RenderContext) -> list[Manifest]:
    return kserve.render_crds(rc.store, platform_labels("kserve"))


def run(ctx: Context, objs: list[Manifest]) -> None:
    ctx.kube.register_crds(objs)
    apply_objects(ctx, NAME, objs)
    wait_crds(ctx, objs)
