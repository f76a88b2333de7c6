"""--gpu decisions, the ROCm render, and the PyTorch template (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.harness import sysfs
from tests.harness.validation import ManifestValidator, image_errors

from hybrid_knative.addon import render
from hybrid_knative.components.gpu_amd import rocm
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.objects import images
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.progress import Status
from hybrid_knative.system.gpu import choose_vendor, detect

QUIET = Status(verbosity=-1)


@pytest.fixture
def amd(tmp_path: Path):  # type: ignore[no-untyped-def]
    sysfs.discrete_amd_gpu(tmp_path)
    return detect(tmp_path)


@pytest.mark.parametrize(("mode", "builder", "expected"), [
    ("auto", sysfs.discrete_amd_gpu, "amd"),
    ("auto", sysfs.nvidia_gpu, "nvidia"),
    ("auto", sysfs.no_gpu, None),
    ("auto", sysfs.amd_gpu_without_driver, None),
    ("nvidia", sysfs.no_gpu, "nvidia"),
    ("none", sysfs.discrete_amd_gpu, None),
    ("amd", sysfs.discrete_amd_gpu, "amd"),
])
def test_choose_vendor(tmp_path: Path, mode: str, builder, expected) -> None:  # type: ignore[no-untyped-def]
    builder(tmp_path)
    assert choose_vendor(mode, detect(tmp_path)) == expected


def test_amd_without_a_usable_gpu_is_a_clear_error(tmp_path: Path) -> None:
    sysfs.amd_gpu_without_driver(tmp_path)
    with pytest.raises(ConfigError) as err:
        choose_vendor("amd", detect(tmp_path))
    assert "no usable AMD GPU" in err.value.brief
    assert "driver not loaded" in (err.value.details or "")
    with pytest.raises(ConfigError, match="unknown --gpu"):
        choose_vendor("intel", None)


@pytest.mark.parametrize("kube", ["1.32", "1.33", "1.34", "1.35", "1.36"])
def test_amd_plan_renders_pinned_selective_daemonsets(amd, kube: str) -> None:  # type: ignore[no-untyped-def]
    host = HostFacts(gpu=amd, node_name="node-1")
    _, rendered = render(Config(gpu="amd"), KubeVersion.parse(kube), QUIET, host)
    steps = {r.step.name: r.objects for r in rendered}
    order = list(steps)
    gpu_steps = ["label_gpu_nodes", "install_rocm_device_plugin", "configure_gpu_features"]
    start = order.index("label_gpu_nodes")
    assert order[start:start + 3] == gpu_steps
    assert order.index("install_kourier") < start < order.index("mark_enabled")
    objs = steps["install_rocm_device_plugin"]
    daemonsets = [o for o in objs if o["kind"] == "DaemonSet"]
    assert {d["metadata"]["name"] for d in daemonsets} == {"amdgpu-device-plugin-daemonset",
                                                           "amdgpu-labeller-daemonset"}
    for ds in daemonsets:
        pod = ds["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64", "amd.com/gpu.present": "true"}
        assert all(c["imagePullPolicy"] == "IfNotPresent" for c in pod["containers"])
    assert sorted(i for o in objs for i in images(o)) == [
        "docker.io/rocm/k8s-device-plugin:1.31.0.9", "docker.io/rocm/k8s-device-plugin:labeller-1.31.0.9"]
    assert not [e for o in objs for e in image_errors(o)]
    crb = next(o for o in objs if o["kind"] == "ClusterRoleBinding")
    assert "namespace" not in crb["metadata"]
    validator = ManifestValidator(kube)
    assert validator.validate_all(objs + steps["label_gpu_nodes"] + steps["configure_gpu_features"]) == []
    node = steps["label_gpu_nodes"][0]
    assert node["metadata"]["name"] == "node-1"
    assert node["metadata"]["labels"]["amd.com/gpu.present"] == "true"
    assert node["metadata"]["labels"]["amd.com/gpu.gfx-target"] == "gfx1100"
    assert node["metadata"]["annotations"]["hybrid-knative.io/render-gid"] == str(amd.render_gid)


def test_nvidia_plan_delegates(tmp_path: Path) -> None:
    sysfs.nvidia_gpu(tmp_path)
    _, rendered = render(Config(), KubeVersion.parse("1.34"), QUIET, HostFacts(gpu=detect(tmp_path)))
    names = [r.step.name for r in rendered]
    assert "enable_nvidia_addon" in names
    assert "install_rocm_device_plugin" not in names


def test_no_gpu_plan_has_no_gpu_steps(tmp_path: Path) -> None:
    sysfs.no_gpu(tmp_path)
    _, rendered = render(Config(), KubeVersion.parse("1.34"), QUIET, HostFacts(gpu=detect(tmp_path)))
    assert not [r for r in rendered if "gpu" in r.step.name or "nvidia" in r.step.name or "rocm" in r.step.name]


@pytest.mark.parametrize("kube", ["1.32", "1.36"])
def test_pytorch_template(kube: str, repo: Path) -> None:
    from hybrid_knative.catalog import load_catalog
    from hybrid_knative.manifests import load_documents
    from hybrid_knative.upstream import UpstreamStore

    ksvc = rocm.render_pytorch(kind="ksvc", render_gid=110, hsa_override_gfx_version="11.0.0")[0]
    spec = ksvc["spec"]["template"]["spec"]
    assert spec["securityContext"] == {"seccompProfile": {"type": "Unconfined"}, "supplementalGroups": [110]}
    container = spec["containers"][0]
    assert container["resources"]["limits"] == {"amd.com/gpu": 1}
    assert container["env"] == [{"name": "HSA_OVERRIDE_GFX_VERSION", "value": "11.0.0"}]
    assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    pod = rocm.render_pytorch(kind="pod", render_gid=None)[0]
    assert pod["kind"] == "Pod" and "supplementalGroups" not in pod["spec"]["securityContext"]
    serving = load_catalog().release("1.23").component("knative-serving").file("serving-crds.yaml")
    crds = load_documents(UpstreamStore().read_text(serving), source="crds")
    validator = ManifestValidator(kube, crds)
    assert validator.errors(ksvc) == []
    assert validator.errors(pod) == []
    assert image_errors(ksvc) == [] and image_errors(pod) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gpus": 0}, "at least 1"),
    ({"hsa_override_gfx_version": "gfx1100"}, "HSA_OVERRIDE_GFX_VERSION"),
    ({"image": "rocm/pytorch:latest"}, "not pinned"),
    ({"image": "rocm/pytorch"}, "not pinned"),
])
def test_pytorch_template_rejects_bad_input(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        rocm.render_pytorch(**kwargs)
