"""Knative Serving CRDs, then wait until every CRD is Established."""

from __future__ import annotations

from hybrid_knative.install.apply import apply_objects
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.install.render import upstream_objects
from hybrid_knative.kube import ready
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import wait_all

NAME = "install_serving_crds"
TITLE = "Install Knative Serving CRDs"


def render(rc: RenderContext) -> list[Manifest]:
    return upstream_objects(rc, "knative-serving", "serving-crds.yaml")


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
    wait_all({f"CRD {n}": ready.crd_established(ctx.kube, n) for n in names}, policy=ctx.waits,
             stats=ctx.stats, on_progress=ctx.status.note,
             resolution="the API server has not accepted the CRDs; check `microk8s kubectl get crd`")
