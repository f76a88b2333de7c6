"""Readiness of Knative objects and Jobs, on the conditions their controllers write. Each returns a Check."""

from __future__ import annotations

from typing import Any

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.ready import condition, describe, generation_pending, object_check
from hybrid_knative.kube.wait import Check

SERVING = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"


def knative_ready(kube: KubeApi, ref: ObjectRef) -> Check:
    """Ready=True for the object's current generation (Knative's observedGeneration contract)."""

    def judge(obj: dict[str, Any]) -> str | None:
        pending = generation_pending(obj)
        if pending:
            return pending
        cond = condition(obj, "Ready")
        return None if cond is not None and cond.get("status") == "True" else describe(cond, "Ready")

    return object_check(kube, ref, judge)


def job_complete(kube: KubeApi, namespace: str, name: str, *, what: str, resolution: str) -> Check:
    """Complete → ready; Failed → a PermanentError at once (no point waiting for the deadline)."""
    def judge(obj: dict[str, Any]) -> str | None:
        done = condition(obj, "Complete")
        if done is not None and done.get("status") == "True":
            return None
        failed = condition(obj, "Failed")
        if failed is not None and failed.get("status") == "True":
            raise PermanentError(f"{what} failed (Job {namespace}/{name})", details=describe(failed, "Failed"),
                                 resolution=resolution)
        return "running"

    return object_check(kube, ObjectRef("batch/v1", "Job", namespace, name), judge)
