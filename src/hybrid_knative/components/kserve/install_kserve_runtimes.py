"""Serving runtimes: sklearn, xgboost, lightgbm, huggingface (CPU); vLLM and PyTorch on ROCm on AMD GPU hosts."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import kserve
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.system.gpu import choose_vendor

NAME = "install_kserve_runtimes"
TITLE = "Install the model serving runtimes"


def render(rc: RenderContext) -> list[Manifest]:
    rocm = choose_vendor(rc.config.gpu, rc.host.gpu) == "amd"
    return kserve.render_runtimes(rc.store, platform_labels("kserve"), rocm=rocm)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
