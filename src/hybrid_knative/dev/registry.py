"""Which registry images go to: MicroK8s's `registry` addon (localhost:32000), or --registry."""

from __future__ import annotations

import dataclasses

from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef

MICROK8S_REGISTRY = ObjectRef("v1", "Service", "container-registry", "registry")
MICROK8S_PORT = 32000


@dataclasses.dataclass(frozen=True)
class Registry:
    push: str  # where this machine pushes (host[:port][/prefix])
    pull: str  # how the cluster's nodes name it in image references
    source: str  # "--registry", "project file", "MicroK8s registry addon"


def choose(kube: KubeApi, *, override: str | None) -> Registry:
    if override:
        value = override.strip().rstrip("/")
        if not value or any(c.isspace() for c in value) or "://" in value:
            raise ConfigError(f"invalid registry {override!r}", resolution="give HOST[:PORT][/PATH], e.g. "
                              "registry.example.com:5000/team (no scheme)")
        return Registry(value, value, "--registry")
    svc = kube.get(MICROK8S_REGISTRY)
    if svc is not None:
        ports = (svc.get("spec") or {}).get("ports") or []
        node_port = next((int(p["nodePort"]) for p in ports if p.get("nodePort")), MICROK8S_PORT)
        address = f"localhost:{node_port}"
        return Registry(address, address, "MicroK8s registry addon")
    raise ConfigError("no container registry to push function images to",
                      details="the cluster has no Service container-registry/registry (MicroK8s's registry addon)",
                      resolution="enable it with `sudo microk8s enable registry` (it serves localhost:32000 on "
                      "every node), or pass --registry HOST[:PORT] of a registry the nodes can pull from")
