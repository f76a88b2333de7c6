"""Preflight refuses, with numbers, a cluster that cannot hold the platform — before any write."""

from __future__ import annotations

import pytest

from hybrid_knative import addon
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from tests.integration.conftest import Cluster

QUIET = Status(verbosity=-1)


def small_node(cluster: Cluster, *, cpu: str, memory: str, arch: str = "amd64") -> None:
    node = cluster.server.get("v1", "nodes", "node-1")
    assert node is not None
    node["status"] = {**node["status"], "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                      "nodeInfo": {"architecture": arch, "operatingSystem": "linux", "machineID": "m",
                                   "systemUUID": "u",
                                   "bootID": "b", "kernelVersion": "6.8.0", "osImage": "Ubuntu 24.04",
                                   "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.34.2",
                                   "kubeProxyVersion": "v1.34.2"}}
    cluster.server.put_object("v1", "nodes", node)


def busy_pod(cluster: Cluster, cpu: str) -> None:
    cluster.server.put_object("v1", "pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "busy", "namespace": "default"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox:1.36",
                                                      "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": "Running"}})


def test_too_small_a_node_is_refused_with_numbers_and_nothing_written(cluster: Cluster) -> None:
    small_node(cluster, cpu="2", memory="4Gi")
    busy_pod(cluster, "1500m")  # 0.5 CPU left; the standard profile requests 1.62
    cluster.server.reset_requests()
    with pytest.raises(ConfigError) as err:
        addon.enable(cluster.config(), QUIET)
    assert err.value.brief == "the cluster cannot hold the platform"
    assert "1.62 CPU" in (err.value.details or "") and "0.50 CPU" in (err.value.details or "")
    assert "--profile edge" in (err.value.resolution or "")
    assert cluster.server.writes() == []
    addon.enable(cluster.config(profile="edge"), QUIET)  # 0.30 CPU fits
    assert cluster.marker.is_file()


def test_an_unsupported_architecture_is_refused(cluster: Cluster) -> None:
    small_node(cluster, cpu="64", memory="256Gi", arch="riscv64")
    with pytest.raises(ConfigError, match="architecture") as err:
        addon.enable(cluster.config(), QUIET)
    assert "riscv64" in (err.value.details or "")
    assert cluster.server.writes() == []
