"""Knative Eventing core; waits for its Deployments and for `eventing-webhook` to have ready endpoints.

The eventing webhook validates Eventing's ConfigMaps and objects (Brokers, Triggers…), so nothing
that depends on it is applied before it answers. The upstream PDB of the webhook is fixed for single
nodes (maxUnavailable: 1). ``eventing-tls-networking.yaml`` is not applied: it needs cert-manager.
"""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_deployments, wait_webhook_endpoints

NAME = "install_eventing_core"
TITLE = "Install Knative Eventing core"
NAMESPACE = "knative-eventing"
WEBHOOK_SERVICE = "eventing-webhook"


def render(rc: RenderContext) -> list[Manifest]:
    # eventing-core.yaml repeats the CRDs of eventing-crds.yaml (installed and awaited by the step before)
    return component_objects(rc, "knative-eventing", "eventing-core.yaml", drop_crds=True)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n knative-eventing get pods` and "
                     "`microk8s kubectl -n knative-eventing describe deployment NAME` (image pulls, resources)")
    wait_webhook_endpoints(ctx, NAMESPACE, WEBHOOK_SERVICE, resolution="the Knative Eventing webhook pod is not "
                           "serving; see `microk8s kubectl -n knative-eventing logs deploy/eventing-webhook`")
