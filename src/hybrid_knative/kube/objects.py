"""Manifests as data: object references, apply rank order, checksums. Pure functions on dicts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

Manifest = dict[str, Any]

# Apply order: CRDs → Namespaces → things pods reference → RBAC → workloads → webhooks.
# Delete order is the reverse. Webhook configurations go last so that their (not yet running)
# webhooks cannot block the objects applied before them, and first on delete for the same reason.
RANK: dict[str, int] = {
    "CustomResourceDefinition": 10,
    "Namespace": 20,
    "PriorityClass": 25,
    "ResourceQuota": 26,
    "LimitRange": 27,
    "Secret": 31,
    "ServiceAccount": 32,
    "PersistentVolume": 33,
    "PersistentVolumeClaim": 34,
    "ConfigMap": 35,
    "Role": 41,
    "ClusterRole": 42,
    "RoleBinding": 43,
    "ClusterRoleBinding": 44,
    "Service": 50,
    "DaemonSet": 60,
    "Deployment": 60,
    "StatefulSet": 60,
    "Job": 61,
    "HorizontalPodAutoscaler": 62,
    "PodDisruptionBudget": 62,
    "MutatingWebhookConfiguration": 90,
    "ValidatingWebhookConfiguration": 90,
}
DEFAULT_RANK = 70  # custom resources and anything else: after workloads, before webhooks


@dataclasses.dataclass(frozen=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObjectRef:
        return cls(str(d["api_version"]), str(d["kind"]), d.get("namespace"), str(d["name"]))


def ref_of(obj: Manifest) -> ObjectRef:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError(f"{obj.get('kind', '?')} without metadata.name cannot be applied by name")
    return ObjectRef(str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(name))


def rank(kind: str) -> int:
    return RANK.get(kind, DEFAULT_RANK)


def sort_for_apply(objs: Iterable[Manifest]) -> list[Manifest]:
    """Stable sort by rank: document order is kept within a rank."""
    return sorted(objs, key=lambda o: rank(str(o.get("kind", ""))))


def checksum(obj: Manifest) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def pod_specs(obj: Manifest) -> Iterator[dict[str, Any]]:
    """The pod specs inside a workload (Pod, Deployment, DaemonSet, Job, CronJob, Knative Service…)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield from _template_spec((spec.get("jobTemplate") or {}).get("spec") or {})
    else:
        yield from _template_spec(spec)


def _template_spec(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]


def containers(obj: Manifest) -> Iterator[dict[str, Any]]:
    for pod in pod_specs(obj):
        for key in ("initContainers", "containers", "ephemeralContainers"):
            yield from pod.get(key) or []


def images(obj: Manifest) -> list[str]:
    found = [str(c["image"]) for c in containers(obj) if c.get("image")]
    if obj.get("kind") == "Image" and obj.get("apiVersion", "").startswith("caching.internal.knative.dev/"):
        found.append(str((obj.get("spec") or {}).get("image")))
    return found
