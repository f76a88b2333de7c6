"""The Training Operator's CRDs (PyTorchJob, TFJob, XGBoostJob, MPIJob, PaddleJob, JAXJob)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import training
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.waits import wait_crds

NAME = "install_training_operator_crds"
TITLE = "Install the Training Operator's CRDs"


def render(rc: RenderContext) -> list[Manifest]:
    return training.render_crds(rc.store, platform_labels(training.COMPONENT))


def run(ctx: Context, objs: list[Manifest]) -> None:
    ctx.kube.register_crds(objs)
    apply_objects(ctx, NAME, objs)
    wait_crds(ctx, objs)
