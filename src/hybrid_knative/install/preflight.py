"""Read-only checks and choices before anything is written: host facts, the Knative release the server
supports, conflicts with other installs, room for the platform (CPU, memory, architecture)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence

from hybrid_knative.airgap.bundle import read_manifest as read_bundle_manifest
from hybrid_knative.airgap.bundle import unpack as unpack_bundle
from hybrid_knative.catalog import Catalog, Release, load_catalog
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.profiles import cpu_millis, footprint, memory_mib
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef
from hybrid_knative.platform.context import HostFacts, RenderContext
from hybrid_knative.platform.record import Record
from hybrid_knative.progress import Status
from hybrid_knative.system.gpu import choose_vendor
from hybrid_knative.system.gpu import detect as detect_gpu
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore, http_fetch


def store_for(config: Config) -> UpstreamStore:
    """Where upstream files come from: the bundle (air-gap, never the network), mirrors, the vendored copy."""
    if config.bundle is not None:
        bundle_dir = unpack_bundle(config.bundle, config.effective_state_dir / "bundles").upstream_dir
        return UpstreamStore(search_dirs=(bundle_dir, *config.upstream_dirs, PACKAGE_VENDOR_DIR),
                             cache_dir=config.effective_state_dir / "upstream-cache", fetch=None)
    return UpstreamStore(
        search_dirs=(*config.upstream_dirs, PACKAGE_VENDOR_DIR),
        cache_dir=config.effective_state_dir / "upstream-cache",
        fetch=None if config.offline else http_fetch,
    )


def choose_release(catalog: Catalog, version: KubeVersion, config: Config, status: Status) -> Release:
    requested = config.knative
    if requested is None and config.bundle is not None:  # the release line the bundle carries
        lines = read_bundle_manifest(config.bundle).knative
        requested = lines[0] if len(lines) == 1 else None
    release = catalog.choose(version, requested)
    if (version.major, version.minor) > (catalog.max_tested_kubernetes.major, catalog.max_tested_kubernetes.minor):
        status.warn(f"Kubernetes {version.minor_version} is newer than the newest tested "
                    f"({catalog.max_tested_kubernetes.minor_version}); installing Knative {release.line}")
    return release


def render_context(config: Config, version: KubeVersion, status: Status,
                   host: HostFacts | None = None) -> RenderContext:
    release = choose_release(load_catalog(), version, config, status)
    return RenderContext(config=config, release=release, kube_version=version, store=store_for(config),
                         host=host or HostFacts())


def host_facts(config: Config, kube: KubeApi | None, status: Status) -> HostFacts:
    """Read-only probes of this host that decide the plan (today: its GPUs, and which Node it is)."""
    if config.gpu == "none":
        return HostFacts()
    report = detect_gpu(config.host_root)
    status.detail(f"GPU probe: {report.reason}")
    vendor = choose_vendor(config.gpu, report)  # --gpu amd without a usable AMD GPU stops here
    if vendor is None:
        status.info(f"No usable GPU on this node ({report.reason}): nothing GPU-related is installed")
    node = _local_node_name(kube) if kube is not None and vendor == "amd" else socket.gethostname().lower()
    return HostFacts(gpu=report, node_name=node)


def _local_node_name(kube: KubeApi) -> str:
    nodes = [n["metadata"]["name"] for n in kube.list("v1", "Node")]
    if len(nodes) == 1:
        return str(nodes[0])
    hostname = socket.gethostname().lower()
    for candidate in (hostname, hostname.split(".")[0]):
        if candidate in nodes:
            return candidate
    raise ConfigError(f"cannot tell which of the {len(nodes)} nodes is this host ({hostname})",
                      details=f"nodes: {', '.join(sorted(nodes)) or 'none'}",
                      resolution="run enable on a control-plane node whose Node name is its hostname, "
                      "or pass --gpu none and label GPU nodes through `hybrid-knative join`")


def check_conflicts(kube: KubeApi, record: Record, config: Config) -> None:
    """Refuse to take over a Knative that someone else installed (e.g. the community addon)."""
    if len(record) or config.adopt:
        return
    if kube.get(ObjectRef("v1", "Namespace", None, "knative-serving")) is not None:
        raise ConfigError(
            "Knative Serving is already installed on this cluster, but not by hybrid-knative",
            details="the namespace knative-serving exists and there is no hybrid-knative record of it",
            resolution="remove the other install first (the community addon: `sudo microk8s disable knative`), "
            "or pass --adopt to let hybrid-knative take it over",
        )


SUPPORTED_ARCHES = ("amd64", "arm64")  # Knative, Kourier and Envoy images exist for these (knative-notes.md)


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What the schedulable nodes can still hold: allocatable minus the requests of running pods."""

    cpu_millis: float
    memory_mib: float
    nodes: int

    def __str__(self) -> str:
        return f"{self.cpu_millis / 1000:.2f} CPU / {self.memory_mib / 1024:.2f} GiB free on {self.nodes} node(s)"


def free_capacity(kube: KubeApi) -> Capacity | None:
    """Allocatable CPU/memory of schedulable nodes minus the requests of their non-terminated pods; None
    when the nodes do not report allocatable resources."""
    nodes = [n for n in kube.list("v1", "Node") if not (n.get("spec") or {}).get("unschedulable")]
    allocatable = [(n.get("status") or {}).get("allocatable") or {} for n in nodes]
    if not nodes or not all("cpu" in a and "memory" in a for a in allocatable):
        return None
    names = {n["metadata"]["name"] for n in nodes}
    cpu = sum(cpu_millis(a["cpu"]) for a in allocatable)
    mem = sum(memory_mib(a["memory"]) for a in allocatable)
    for pod in kube.list("v1", "Pod"):
        spec, phase = pod.get("spec") or {}, (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or spec.get("nodeName") not in names:
            continue
        for c in spec.get("containers") or []:
            requests = (c.get("resources") or {}).get("requests") or {}
            cpu -= cpu_millis(requests["cpu"]) if "cpu" in requests else 0
            mem -= memory_mib(requests["memory"]) if "memory" in requests else 0
    return Capacity(cpu_millis=cpu, memory_mib=mem, nodes=len(nodes))


def check_room(kube: KubeApi, objs: Sequence[Manifest], record: Record, status: Status) -> None:
    """Refuse, with numbers, when no node runs a supported architecture or the schedulable nodes cannot
    hold the requests of what enable would start. A re-run (a record exists) is not checked: its own
    pods already count as used."""
    nodes = kube.list("v1", "Node")
    arches = {str(((n.get("status") or {}).get("nodeInfo") or {}).get("architecture")
                  or ((n.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/arch") or "")
              for n in nodes} - {""}
    if arches and not arches & set(SUPPORTED_ARCHES):
        raise ConfigError("no node runs an architecture Knative publishes images for",
                          details=f"node architectures: {', '.join(sorted(arches))}",
                          resolution=f"add a node running one of: {', '.join(SUPPORTED_ARCHES)}")
    if len(record):
        return
    need = footprint(objs)
    free = free_capacity(kube)
    if free is None:
        status.detail("nodes report no allocatable resources: capacity not checked")
        return
    status.detail(f"needs {need}; {free}")
    if need.cpu_millis > free.cpu_millis or need.memory_mib > free.memory_mib:
        raise ConfigError(
            "the cluster cannot hold the platform",
            details=f"enable would request {need.cpu_millis / 1000:.2f} CPU and {need.memory_mib / 1024:.2f} GiB "
            f"of memory ({need.pods} pods); {free}",
            resolution="use `--profile edge` (single replicas, low requests), skip Eventing with --no-eventing, "
            "free resources, or join another node",
        )
