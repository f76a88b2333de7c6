"""The multi-tenant channel-based Broker: controller, ingress and filter must become Available."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.render import component_objects
from hybrid_knative.platform.waits import wait_deployments

NAME = "install_mt_channel_broker"
TITLE = "Install the MT channel-based Broker"


def render(rc: RenderContext) -> list[Manifest]:
    return component_objects(rc, "knative-eventing", "mt-channel-broker.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    wait_deployments(ctx, objs, resolution="see `microk8s kubectl -n knative-eventing get pods` "
                     "(mt-broker-controller, mt-broker-ingress, mt-broker-filter)")
