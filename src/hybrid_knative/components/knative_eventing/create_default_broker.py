"""A default Broker in the namespace the user names (--broker-namespace), waited until Ready.

The namespace is created (and recorded, so disable removes it) only when it does not exist yet;
an existing namespace is never taken over.
"""

from __future__ import annotations

from pathlib import Path

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import knative_ready
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.kube.wait import wait_all
from hybrid_knative.manifests import template_objects
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change, live_get, object_change

NAME = "create_default_broker"
TITLE = "Create the default Broker"
BROKER_NAME = "default"
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})  # always exist


def render(rc: RenderContext) -> list[Manifest]:
    return template_objects(Path(__file__).parent, "broker.yaml.j2",
                            {"name": BROKER_NAME, "namespace": rc.config.broker_namespace})


def namespace_object(namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"app.kubernetes.io/managed-by": "hybrid-knative"}}}


def run(ctx: Context, objs: list[Manifest]) -> None:
    namespace = ctx.config.broker_namespace
    ns_ref = ObjectRef("v1", "Namespace", None, namespace)
    if namespace not in SYSTEM_NAMESPACES and (ctx.record.get(ns_ref) is not None or ctx.kube.get(ns_ref) is None):
        apply_objects(ctx, NAME, [namespace_object(namespace)])
    apply_objects(ctx, NAME, objs)
    wait_all({str(ref_of(o)): knative_ready(ctx.kube, ref_of(o)) for o in objs}, policy=ctx.waits, stats=ctx.stats,
             on_progress=ctx.status.note,
             resolution=f"see `microk8s kubectl -n {namespace} describe broker {BROKER_NAME}` and "
             "`microk8s kubectl -n knative-eventing get pods` (mt-broker-controller, imc-controller)")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The Broker's namespace, created (and recorded) only when it does not exist yet."""
    namespace = rc.config.broker_namespace
    if namespace in SYSTEM_NAMESPACES:
        return []
    ns = namespace_object(namespace)
    return [object_change(ns, live_get(kube, ObjectRef("v1", "Namespace", None, namespace)), compared=kube is not None)]
