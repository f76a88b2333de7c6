"""Which registry images go to: MicroK8s's `registry` addon (localhost:32000), or --registry. When neither is
there, deploy can enable the addon (after asking, or with --yes) and wait until it answers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from hybrid_knative.errors import ConfigError, DeadlineExceeded
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.progress import Status
from hybrid_knative.system import microk8s
from hybrid_knative.system.registry_api import answers
from hybrid_knative.system.runner import Runner

MICROK8S_REGISTRY = ObjectRef("v1", "Service", "container-registry", "registry")
MICROK8S_PORT = 32000
ENABLE_COMMAND = "sudo microk8s enable registry"


@dataclasses.dataclass(frozen=True)
class Registry:
    push: str  # where this machine pushes (host[:port][/prefix])
    pull: str  # how the cluster's nodes name it in image references
    source: str  # "--registry", "project file", "MicroK8s registry addon"


def addon(kube: KubeApi) -> Registry | None:
    """MicroK8s's registry addon, when its Service is there: localhost:<nodePort> on every node."""
    svc = kube.get(MICROK8S_REGISTRY)
    if svc is None:
        return None
    ports = (svc.get("spec") or {}).get("ports") or []
    node_port = next((int(p["nodePort"]) for p in ports if p.get("nodePort")), MICROK8S_PORT)
    address = f"localhost:{node_port}"
    return Registry(address, address, "MicroK8s registry addon")


def _validated(override: str) -> Registry:
    value = override.strip().rstrip("/")
    if not value or any(c.isspace() for c in value) or "://" in value:
        raise ConfigError(f"invalid registry {override!r}", resolution="give HOST[:PORT][/PATH], e.g. "
                          "registry.example.com:5000/team (no scheme)")
    return Registry(value, value, "--registry")


def choose(kube: KubeApi, *, override: str | None) -> Registry:
    if override:
        return _validated(override)
    found = addon(kube)
    if found is not None:
        return found
    raise ConfigError("no container registry to push function images to",
                      details="the cluster has no Service container-registry/registry (MicroK8s's registry addon)",
                      resolution=f"enable it with `{ENABLE_COMMAND}` (it serves localhost:32000 on "
                      "every node), or pass --registry HOST[:PORT] of a registry the nodes can pull from")


def ensure(kube: KubeApi, *, override: str | None, offer: Callable[[], bool], runner: Runner, status: Status,
           timeout: float = 300.0, interval: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> Registry:
    """``choose``; when there is no registry at all, ``offer()`` decides whether to run ``microk8s enable
    registry`` now (MicroK8s's public command), then wait — bounded by ``timeout`` — until its Service exists
    and the registry answers. Refused or impossible to ask: a ConfigError naming the command and --registry.
    Nothing is built or applied before this returns, so a refusal or a failure leaves nothing half-deployed."""
    if override:
        return _validated(override)
    found = addon(kube)
    if found is not None:
        return found
    if not offer():
        raise ConfigError("no container registry to push function images to; nothing was built or deployed",
                          details="the cluster has no Service container-registry/registry (MicroK8s's registry "
                          "addon), and it was not enabled (declined, or no terminal to ask on)",
                          resolution=f"enable it with `{ENABLE_COMMAND}` (it serves localhost:32000 on every node), "
                          "re-run with --yes to let it do that, or pass --registry HOST[:PORT] of a "
                          "registry the nodes can pull from")
    with status.step("Enable MicroK8s's registry addon (microk8s enable registry)"):
        microk8s.enable_addon(runner, "registry", timeout=max(timeout, 60.0))
    deadline = time.monotonic() + timeout
    with status.step("Wait for the registry to answer"):
        while True:
            found = addon(kube)
            problem = "its Service container-registry/registry is not there yet" if found is None else \
                answers(found.push, timeout=min(5.0, max(0.5, interval * 2)))
            if found is not None and problem is None:
                status.detail(f"the registry answers at {found.push}")
                return found
            status.detail(f"registry: {problem}")
            if time.monotonic() + interval > deadline:
                raise DeadlineExceeded(
                    f"MicroK8s's registry addon was enabled but did not answer within {timeout:g}s; nothing was "
                    "built or deployed", details=problem,
                    resolution="check it with `microk8s kubectl -n container-registry get pods,svc` (its volume "
                    "needs the hostpath-storage addon), then re-run deploy")
            sleep(interval)
