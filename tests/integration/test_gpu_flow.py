"""GPU flows on the API emulator: labels on the right nodes only, the device plugin serving them,
disable taking the labels back, NVIDIA delegated through the MicroK8s wrapper (argv boundary)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hybrid_knative import addon
from hybrid_knative.cli.main import cli
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import CommandError, ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.system import marker, microk8s
from hybrid_knative.system.gpu import detect
from tests.harness import sysfs
from tests.harness.emulator import FakeController
from tests.integration.conftest import Cluster
from tests.snap.fakes import Fakes, strict_wrappers

QUIET = Status(verbosity=-1)
HOSTNAME = socket.gethostname().lower()
PLUGIN = "amdgpu-device-plugin-daemonset"


def device_plugin(store: Any) -> None:
    """What the real ROCm device plugin does: on each node its DaemonSet runs on, register amd.com/gpu."""
    ds = store.get("apps/v1", "daemonsets", PLUGIN, "kube-system")
    if not ds or not (ds.get("status") or {}).get("numberReady"):
        return
    selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
    for node in store.list("v1", "nodes"):
        labels = node["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            status = dict(node.get("status") or {})
            alloc = dict(status.get("allocatable") or {})
            if alloc.get("amd.com/gpu") != "1":
                alloc["amd.com/gpu"] = "1"
                store.set_status("v1", "nodes", node["metadata"]["name"], None, {**status, "allocatable": alloc})


def seed_node(cluster: Cluster, name: str, *, arch: str = "amd64", labels: dict[str, str] | None = None) -> None:
    cluster.server.put_object("v1", "nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": arch, "kubernetes.io/hostname": name,
                                              **(labels or {})}}})
    index = len(cluster.server.list("v1", "nodes"))
    cluster.server.set_status("v1", "nodes", name, None, {
        "allocatable": {"cpu": "4", "memory": "8Gi"},
        "addresses": [{"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                      {"type": "Hostname", "address": name}]})


@pytest.fixture
def gpu_cluster(make_cluster: Callable[..., Cluster], tmp_path: Path) -> tuple[Cluster, Path]:
    cluster = make_cluster(controller=FakeController(hooks=[device_plugin]))
    root = tmp_path / "host"
    sysfs.discrete_amd_gpu(root)
    # a second GPU node that joined through the edge agent (labelled by the hub from its own probe)
    other = tmp_path / "edge-gpu"
    sysfs.discrete_amd_gpu(other)
    seed_node(cluster, HOSTNAME)
    seed_node(cluster, "edge-gpu", labels=detect(other).labels())
    seed_node(cluster, "pi-1", arch="arm64")
    seed_node(cluster, "nuc-nogpu")
    return cluster, root


def test_amd_enable_labels_exactly_the_gpu_nodes(gpu_cluster: tuple[Cluster, Path]) -> None:
    cluster, root = gpu_cluster
    addon.enable(cluster.config(gpu="amd", host_root=root, verify=False, eventing=False), QUIET)
    node = cluster.server.get("v1", "nodes", HOSTNAME)
    assert node is not None
    labels, notes = node["metadata"]["labels"], node["metadata"].get("annotations") or {}
    assert labels["amd.com/gpu.present"] == "true"
    assert labels["amd.com/gpu.gfx-target"] == "gfx1100"
    assert notes["hybrid-knative.io/render-gid"] == str(detect(root).render_gid)
    ds = cluster.server.get("apps/v1", "daemonsets", PLUGIN, "kube-system")
    assert ds is not None
    selector = ds["spec"]["template"]["spec"]["nodeSelector"]
    selected = {n["metadata"]["name"] for n in cluster.server.list("v1", "nodes")
                if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())}
    assert selected == {HOSTNAME, "edge-gpu"}
    offering = {n["metadata"]["name"] for n in cluster.server.list("v1", "nodes")
                if (n.get("status") or {}).get("allocatable", {}).get("amd.com/gpu") == "1"}
    assert offering == {HOSTNAME, "edge-gpu"}
    features = cluster.server.get("v1", "configmaps", "config-features", "knative-serving")
    assert features is not None and features["data"]["kubernetes.podspec-securitycontext"] == "enabled"

    cluster.server.reset_requests()
    addon.enable(cluster.config(gpu="amd", host_root=root, verify=False, eventing=False), QUIET)
    assert cluster.server.writes() == []

    addon.disable(cluster.config(), QUIET)
    node = cluster.server.get("v1", "nodes", HOSTNAME)
    assert node is not None
    assert "amd.com/gpu.present" not in node["metadata"]["labels"]
    assert "hybrid-knative.io/render-gid" not in (node["metadata"].get("annotations") or {})
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"  # not ours: untouched
    assert cluster.server.get("apps/v1", "daemonsets", PLUGIN, "kube-system") is None


def test_amd_without_gpu_refused_before_any_write(make_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = make_cluster()
    sysfs.amd_gpu_without_driver(tmp_path)
    with pytest.raises(ConfigError, match="no usable AMD GPU"):
        addon.enable(cluster.config(gpu="amd", host_root=tmp_path), QUIET)
    assert cluster.server.writes() == []


def test_plugin_never_serving_names_the_node(make_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = make_cluster()  # no device-plugin behaviour: allocatable never appears
    sysfs.discrete_amd_gpu(tmp_path)
    seed_node(cluster, HOSTNAME)
    with pytest.raises(Exception) as err:
        addon.enable(cluster.config(gpu="amd", host_root=tmp_path, verify=False, eventing=False, wait_timeout=1.0),
                     QUIET)
    assert f"Node {HOSTNAME} allocatable amd.com/gpu" in str(err.value)
    assert "rollout restart" in str(err.value)


def fake_microk8s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, nvidia_enabled: bool,
                  fails: bool = False) -> tuple[Fakes, Path]:
    """MicroK8s's public command (the faithful fake of tests/snap/fakes.py), and a MicroK8s snap folder
    whose internal wrappers fail without MicroK8s's environment — as they do from our snap or pip."""
    fakes = Fakes(tmp_path / "fakes", microk8s={"channel": "1.35/stable"},
                  core_enabled=["dns", "nvidia"] if nvidia_enabled else ["dns"],
                  core_fails="nvidia" if fails else None)
    monkeypatch.setenv("FAKE_STATE", str(fakes.state_file))
    monkeypatch.setenv(microk8s.ENV, fakes.microk8s)
    snap = tmp_path / "snap"
    strict_wrappers(snap)
    return fakes, snap


def microk8s_calls(fakes: Fakes) -> list[list[str]]:
    return [c for c in fakes.calls if c[0] == "microk8s"]


def test_nvidia_is_delegated_and_not_undone(make_cluster: Callable[..., Cluster], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_cluster()
    root = tmp_path / "host"
    sysfs.nvidia_gpu(root)
    fakes, snap = fake_microk8s(tmp_path, monkeypatch, nvidia_enabled=False)
    config = cluster.config(gpu="auto", host_root=root, verify=False, eventing=False, snap=SnapPaths(snap=snap))
    addon.enable(config, QUIET)
    assert microk8s_calls(fakes) == [["microk8s", "status", "--addon", "nvidia"], ["microk8s", "enable", "nvidia"]]
    assert fakes.read()["core_calls"] == [["enable", "nvidia", "1"]]  # nested: MICROK8S_ADDONS_SKIP_LOCK=1
    assert "nvidia" in fakes.read()["core_enabled"]
    lines: list[str] = []

    class Capture(Status):
        def info(self, message: str) -> None:
            lines.append(message)

    addon.disable(config, Capture(verbosity=0))
    assert any("sudo microk8s disable nvidia" in line for line in lines)
    assert len(microk8s_calls(fakes)) == 2  # disable never calls MicroK8s


def test_nvidia_already_enabled_is_not_enabled_again(make_cluster: Callable[..., Cluster], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_cluster()
    root = tmp_path / "host"
    sysfs.nvidia_gpu(root)
    fakes, snap = fake_microk8s(tmp_path, monkeypatch, nvidia_enabled=True)
    addon.enable(cluster.config(gpu="auto", host_root=root, verify=False, eventing=False,
                                snap=SnapPaths(snap=snap)), QUIET)
    assert microk8s_calls(fakes) == [["microk8s", "status", "--addon", "nvidia"]]


def test_nvidia_failure_is_reported_clearly(make_cluster: Callable[..., Cluster], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_cluster()
    root = tmp_path / "host"
    sysfs.nvidia_gpu(root)
    _fakes, snap = fake_microk8s(tmp_path, monkeypatch, nvidia_enabled=False, fails=True)
    with pytest.raises(CommandError) as err:
        addon.enable(cluster.config(gpu="auto", host_root=root, verify=False, eventing=False,
                                    snap=SnapPaths(snap=snap)), QUIET)
    assert "nvidia addon failed (exit code 1)" in err.value.brief
    assert "GPU operator failed" in (err.value.details or "")
    assert "--gpu none" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_gpu_status_and_example_cli(gpu_cluster: tuple[Cluster, Path], tmp_path: Path) -> None:
    cluster, root = gpu_cluster
    addon.enable(cluster.config(gpu="amd", host_root=root, verify=False, eventing=False), QUIET)
    nodriver = tmp_path / "nodriver"
    sysfs.amd_gpu_without_driver(nodriver)
    cluster.server.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "edge-nodriver", "labels": detect(nodriver).labels(), "annotations": detect(nodriver).annotations()}})
    result = CliRunner().invoke(cli, ["gpu", "status", "--kubeconfig", str(cluster.kubeconfig),
                                      "--state-dir", str(cluster.state_dir), "--host-root", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "this host: AMD GPU ready for ROCm" in out and "gfx=gfx1100" in out
    line = next(x for x in out.splitlines() if x.startswith(HOSTNAME))
    assert "amd.com/gpu=1" in line and "gfx1100" in line
    missing = next(x for x in out.splitlines() if x.startswith("edge-nodriver"))
    assert "amdgpu driver not loaded" in missing
    assert "not probed" in next(x for x in out.splitlines() if x.startswith("pi-1"))
    result = CliRunner().invoke(cli, ["gpu", "example", "--kind", "pod", "--host-root", str(root)])
    assert result.exit_code == 0
    assert f"supplementalGroups:\n    - {detect(root).render_gid}" in result.output
    result = CliRunner().invoke(cli, ["gpu", "example", "--gpus", "0"])
    assert result.exit_code == 2
