"""Readiness checks on real conditions, as the controllers report them. Each returns a Check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import Check


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition of type ``kind`` (None when the controller has not written it)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return dict(cond)
    return None


def describe(cond: dict[str, Any] | None, kind: str) -> str:
    """``Ready=False (Reason): message`` — the controller's own words, for errors and status."""
    if cond is None:
        return f"no {kind} condition yet"
    text = f"{kind}={cond.get('status')}"
    if cond.get("reason"):
        text += f" ({cond['reason']})"
    if cond.get("message"):
        text += f": {cond['message']}"
    return text


def generation_pending(obj: dict[str, Any]) -> str | None:
    """Status describes an older spec until the controller reports the current generation."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return f"controller has not seen generation {generation} yet"
    return None


def object_check(kube: KubeApi, ref: ObjectRef, judge: Callable[[dict[str, Any]], str | None]) -> Check:
    """A Check that reads ``ref`` and lets ``judge`` decide; a missing object is "not found"."""

    def check() -> str | None:
        obj = kube.get(ref)
        return "not found" if obj is None else judge(obj)

    return check


def crd_established(kube: KubeApi, name: str) -> Check:
    def judge(obj: dict[str, Any]) -> str | None:
        cond = condition(obj, "Established")
        return None if cond and cond.get("status") == "True" else describe(cond, "Established")

    return object_check(kube, ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name), judge)


def deployment_available(kube: KubeApi, namespace: str, name: str) -> Check:
    def judge(obj: dict[str, Any]) -> str | None:
        pending = generation_pending(obj)
        if pending:
            return pending
        cond = condition(obj, "Available")
        if cond and cond.get("status") == "True":
            return None
        progressing = condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return describe(progressing, "Progressing")
        return describe(cond, "Available")

    return object_check(kube, ObjectRef("apps/v1", "Deployment", namespace, name), judge)


def service_endpoints_ready(kube: KubeApi, namespace: str, service: str) -> Check:
    """At least one ready endpoint behind the Service (EndpointSlices, discovery.k8s.io/v1)."""

    def check() -> str | None:
        slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace=namespace,
                           labels={"kubernetes.io/service-name": service})
        for s in slices:
            for ep in s.get("endpoints") or []:
                ready = (ep.get("conditions") or {}).get("ready")
                if ep.get("addresses") and ready is not False:
                    return None
        return "no ready endpoints yet" if slices else "no EndpointSlice yet"

    return check


def gone(kube: KubeApi, ref: ObjectRef) -> Check:
    def check() -> str | None:
        obj = kube.get(ref)
        if obj is None:
            return None
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return "terminating"
        return "still present"

    return check


def daemonset_ready(kube: KubeApi, namespace: str, name: str) -> Check:
    """Rolled out on every node it selects (zero selected nodes counts as ready)."""
    def judge(obj: dict[str, Any]) -> str | None:
        pending = generation_pending(obj)
        if pending:
            return pending
        status = obj.get("status") or {}
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready_count = int(status.get("numberReady") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        if ready_count >= desired and updated >= desired:
            return None
        return f"{ready_count}/{desired} pods ready, {updated}/{desired} updated"

    return object_check(kube, ObjectRef("apps/v1", "DaemonSet", namespace, name), judge)


def node_allocatable(kube: KubeApi, node: str, resource: str) -> Check:
    """The node offers at least one ``resource`` (e.g. amd.com/gpu) — a device plugin registered it."""

    def judge(obj: dict[str, Any]) -> str | None:
        value = str(((obj.get("status") or {}).get("allocatable") or {}).get(resource, "0"))
        return None if value.isdigit() and int(value) > 0 else f"allocatable {resource} is {value}"

    return object_check(kube, ObjectRef("v1", "Node", None, node), judge)
