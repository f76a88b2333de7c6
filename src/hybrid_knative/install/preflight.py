"""Read-only checks and choices before anything is written: host facts, the Knative release the server
supports, conflicts with other installs, room for the platform (CPU, memory, architecture)."""

from __future__ import annotations

import socket

from hybrid_knative.airgap.bundle import read_manifest as read_bundle_manifest
from hybrid_knative.airgap.bundle import unpack as unpack_bundle
from hybrid_knative.catalog import Catalog, Release, load_catalog
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
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
