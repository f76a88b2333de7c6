"""The Training Operator (standalone overlay, structurally) with our webhook certificate and caBundle."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import cluster, pki, training
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.waits import wait_deployments, wait_webhook_endpoints

NAME = "install_training_operator"
TITLE = "Install the Training Operator (own webhook certificate)"


def render(rc: RenderContext) -> list[Manifest]:
    return pki.redacted(training.render_operator(rc.store, platform_labels(training.COMPONENT), pki.PLACEHOLDER))


def run(ctx: Context, objs: list[Manifest]) -> None:
    webhook, reasons = pki.ensure(pki.TRAINING, cluster.current_pki(ctx.kube, pki.TRAINING))
    if reasons:
        ctx.status.detail(f"webhook certificate: {'; '.join(reasons)}")
    live = training.render_operator(ctx.render.store, platform_labels(training.COMPONENT), webhook)
    apply_objects(ctx, NAME, live)
    wait_deployments(ctx, live, resolution="see `microk8s kubectl -n kubeflow get pods`")
    wait_webhook_endpoints(ctx, training.NAMESPACE, pki.TRAINING.service,
                           resolution="the operator serves its webhook on :9443; see its logs")
