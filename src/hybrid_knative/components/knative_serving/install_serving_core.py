"""Knative Serving core; waits for its Deployments and for the webhook to have ready endpoints.

The webhook validates Knative ConfigMaps (failurePolicy: Fail), so no ConfigMap may be patched
before it answers: this step ends only when the `webhook` Service has a ready endpoint.
"""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_deployments, wait_webhook_endpoints

NAME = "install_serving_core"
TITLE = "Install Knative Serving core"
NAMESPACE = "knative-serving"


def render(rc: RenderContext) -> list[Manifest]:
    # serving-core.yaml repeats the CRDs of serving-crds.yaml (installed and awaited by the step before)
    return component_objects(rc, "knative-serving", "serving-core.yaml", drop_crds=True)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n knative-serving get pods` and "
                     "`microk8s kubectl -n knative-serving describe deployment NAME` (image pulls, resources)")
    wait_webhook_endpoints(ctx, NAMESPACE, "webhook", resolution="the Knative webhook pod is not serving; see "
                           "`microk8s kubectl -n knative-serving logs deploy/webhook`")
