"""Resource profiles as structured transforms on rendered objects.

``standard`` leaves upstream objects untouched. ``edge`` (small boards, laptops) runs every workload
as a single replica, caps CPU/memory *requests* (limits are kept), and sets HPA minReplicas to 1.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

from hybrid_knative.kube.objects import Manifest, containers


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    max_cpu_millis: int | None = None  # cap on each container's CPU request
    max_memory_mib: int | None = None  # cap on each container's memory request
    single_replica: bool = False  # replicas > 1 → 1; HPA minReplicas → 1


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard"),
    "edge": Profile("edge", max_cpu_millis=25, max_memory_mib=32, single_replica=True),
}

_WORKLOADS = ("Deployment", "StatefulSet")
_UNITS = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0 * 1024, "k": 1000 / 1024 / 1024,
          "M": 1000**2 / 1024**2, "G": 1000**3 / 1024**2}


def cpu_millis(text: object) -> float:
    value = str(text).strip()
    if value.endswith("m"):
        return float(value[:-1])
    return float(value) * 1000


def memory_mib(text: object) -> float:
    value = str(text).strip()
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * _UNITS[suffix]
    return float(value) / 1024 / 1024  # plain bytes


def apply_profile(objs: Iterable[Manifest], name: str) -> list[Manifest]:
    profile = PROFILES[name]
    if profile == PROFILES["standard"]:
        return list(objs)
    return [_transform(o, profile) for o in objs]


def _transform(obj: Manifest, profile: Profile) -> Manifest:
    kind = obj.get("kind")
    if kind == "HorizontalPodAutoscaler" and profile.single_replica:
        out = copy.deepcopy(obj)
        spec = out.setdefault("spec", {})
        spec["minReplicas"] = 1
        spec["maxReplicas"] = max(1, min(int(spec.get("maxReplicas", 1)), 2))
        return out
    if kind not in _WORKLOADS:
        return obj
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    if profile.single_replica and int(spec.get("replicas", 1)) > 1:
        spec["replicas"] = 1
    for c in containers(out):
        requests = (c.get("resources") or {}).get("requests")
        if not isinstance(requests, dict):
            continue
        if profile.max_cpu_millis is not None and "cpu" in requests \
                and cpu_millis(requests["cpu"]) > profile.max_cpu_millis:
            requests["cpu"] = f"{profile.max_cpu_millis}m"
        if profile.max_memory_mib is not None and "memory" in requests \
                and memory_mib(requests["memory"]) > profile.max_memory_mib:
            requests["memory"] = f"{profile.max_memory_mib}Mi"
    return out


@dataclasses.dataclass(frozen=True)
class Footprint:
    cpu_millis: float
    memory_mib: float
    pods: int

    def __str__(self) -> str:
        return f"{self.cpu_millis / 1000:.2f} CPU / {self.memory_mib / 1024:.2f} GiB / {self.pods} pods"


def footprint(objs: Iterable[Manifest]) -> Footprint:
    """Requests of the steady-state pods: per workload max(replicas, its HPA's minReplicas) × the
    containers' requests (init containers and Jobs excluded; a container without requests counts 0)."""
    items = list(objs)
    hpa_min: dict[tuple[str | None, str], int] = {}
    for o in items:
        if o.get("kind") == "HorizontalPodAutoscaler":
            target = (o.get("spec") or {}).get("scaleTargetRef") or {}
            hpa_min[((o.get("metadata") or {}).get("namespace"), str(target.get("name")))] = \
                int((o.get("spec") or {}).get("minReplicas", 1))
    cpu = mem = 0.0
    pods = 0
    for o in items:
        if o.get("kind") not in _WORKLOADS:
            continue
        meta = o.get("metadata") or {}
        replicas = int((o.get("spec") or {}).get("replicas", 1))
        replicas = max(replicas, hpa_min.get((meta.get("namespace"), str(meta.get("name"))), 0))
        pods += replicas
        for c in ((o.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
            requests = (c.get("resources") or {}).get("requests") or {}
            cpu += replicas * cpu_millis(requests["cpu"]) if "cpu" in requests else 0
            mem += replicas * memory_mib(requests["memory"]) if "memory" in requests else 0
    return Footprint(cpu_millis=cpu, memory_mib=mem, pods=pods)
