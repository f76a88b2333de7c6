"""Readiness of Knative objects and Jobs, on the conditions their controllers write. Each returns a Check."""

from __future__ import annotations

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.ready import condition, describe
from hybrid_knative.kube.wait import Check

SERVING = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"


def knative_ready(kube: KubeApi, ref: ObjectRef) -> Check:
    """Ready=True for the object's current generation (Knative's observedGeneration contract)."""

    def check() -> str | None:
        obj = kube.get(ref)
        if obj is None:
            return "not found"
        generation = (obj.get("metadata") or {}).get("generation")
        observed = (obj.get("status") or {}).get("observedGeneration")
        if generation is not None and observed != generation:
            return f"controller has not seen generation {generation} yet"
        cond = condition(obj, "Ready")
        return None if cond is not None and cond.get("status") == "True" else describe(cond, "Ready")

    return check


def job_complete(kube: KubeApi, namespace: str, name: str, *, what: str, resolution: str) -> Check:
    """Complete → ready; Failed → a PermanentError at once (no point waiting for the deadline)."""
    ref = ObjectRef("batch/v1", "Job", namespace, name)

    def check() -> str | None:
        obj = kube.get(ref)
        if obj is None:
            return "not found"
        done = condition(obj, "Complete")
        if done is not None and done.get("status") == "True":
            return None
        failed = condition(obj, "Failed")
        if failed is not None and failed.get("status") == "True":
            raise PermanentError(f"{what} failed (Job {namespace}/{name})", details=describe(failed, "Failed"),
                                 resolution=resolution)
        return "running"

    return check
