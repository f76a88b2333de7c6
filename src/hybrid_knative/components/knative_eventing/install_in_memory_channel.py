"""The in-memory channel (the default channel of MT channel-based Brokers): CRD, controller, dispatcher."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_crds, wait_deployments, wait_webhook_endpoints

NAME = "install_in_memory_channel"
TITLE = "Install the in-memory channel"
NAMESPACE = "knative-eventing"
WEBHOOK_SERVICE = "inmemorychannel-webhook"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "knative-eventing", "in-memory-channel.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_crds(ctx, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n knative-eventing get pods -l "
                     "messaging.knative.dev/channel=in-memory-channel`")
    wait_webhook_endpoints(ctx, NAMESPACE, WEBHOOK_SERVICE, resolution="the in-memory channel webhook is not "
                           "serving; see `microk8s kubectl -n knative-eventing logs deploy/imc-controller`")
