"""Serving runtimes: the upstream CPU ones a workstation needs, and our own ROCm ones.

Upstream CPU runtimes keep their names (KServe may rewrite their image tags to its own version — they
are KServe's images anyway) but get workstation-sized requests instead of 1 CPU / 2 GiB each.

Our ROCm runtimes are NOT named like KServe's built-ins and carry no ``serving.kserve.io/server-type``
annotation, so KServe's image rewriting (``UpdateImageTag``) leaves their pinned images alone. They
request ``amd.com/gpu`` explicitly (KServe's GPU detection only knows NVIDIA names) and schedule only
on nodes we labelled ``amd.com/gpu.present=true`` (amd64: the ROCm images are amd64-only).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hybrid_knative.errors import ConfigError

Manifest = dict[str, Any]

GPU_RESOURCE = "amd.com/gpu"
GPU_PRESENT_LABEL = "amd.com/gpu.present"  # set by hybrid-knative's GPU node labelling
# Pinned ROCm serving images (plain, explicit tags; 10–20 GB, amd64 only). Check with
# `skopeo inspect docker://IMAGE` before changing; bundles carry them only with `--with ml-rocm`.
# vLLM: listed by AMD (ROCm 6.4.1, vLLM 0.9.1, PyTorch 2.7.0) in
# https://rocm.docs.amd.com/en/docs-7.1.0/how-to/rocm-for-ai/inference/benchmark-docker/previous-versions/vllm-history.html
# PyTorch: `docker pull`ed in AMD's Ray-on-ROCm install guide (https://rocm.docs.amd.com/projects/ray/, the
# ROCm 6.4.1 edition) and used as a FROM image publicly; no Docker Hub tag page was reachable to confirm it.
VLLM_ROCM_IMAGE = "docker.io/rocm/vllm:rocm6.4.1_vllm_0.9.1_20250715"
PYTORCH_ROCM_IMAGE = "docker.io/rocm/pytorch:rocm6.4.1_ubuntu24.04_py3.12_pytorch_release_2.6.0"
SHM = "/dev/shm"  # noqa: S108 - the container's shared memory mount (memory-backed emptyDir)
POD_TMP = "/tmp"  # noqa: S108 - inside the container (HOME / caches of a non-root user)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A name users type (``--runtime``) and what it maps to in the cluster."""

    name: str
    cluster_runtime: str
    model_format: str
    gpu: bool
    description: str
    protocol: str = "v1"
    amd64_only: bool = False


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("sklearn", "kserve-sklearnserver", "sklearn", gpu=False,
            description="scikit-learn model.joblib / model.pkl (v1 and v2 protocol)"),
    Runtime("xgboost", "kserve-xgbserver", "xgboost", gpu=False, description="XGBoost model.bst / model.json"),
    Runtime("lightgbm", "kserve-lgbserver", "lightgbm", gpu=False, description="LightGBM model.bst"),
    Runtime("huggingface", "kserve-huggingfaceserver", "huggingface", gpu=False, amd64_only=True,
            description="Hugging Face transformers on CPU (small models; amd64 image)"),
    Runtime("vllm-rocm", "hk-vllm-rocm", "vLLM", gpu=True, protocol="openai", amd64_only=True,
            description="vLLM on an AMD GPU (OpenAI API under /openai/v1)"),
    Runtime("pytorch-rocm", "hk-pytorch-rocm", "pytorch-rocm", gpu=True, amd64_only=True,
            description="PyTorch on an AMD GPU: the model folder brings serve.py (a KServe-protocol server)"),
)}
CPU_RUNTIMES = tuple(r.cluster_runtime for r in RUNTIMES.values() if not r.gpu)

# per predictor: what a workstation can afford (upstream asks 1 CPU / 2 GiB for every model)
CPU_SIZES: dict[str, dict[str, dict[str, str]]] = {
    "kserve-sklearnserver": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "kserve-xgbserver": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "kserve-lgbserver": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "kserve-huggingfaceserver": {"requests": {"cpu": "500m", "memory": "2Gi"},
                                 "limits": {"cpu": "2", "memory": "6Gi"}},
}


def runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join(f"{r.name} ({r.description})" for r in RUNTIMES.values())
        raise ConfigError(f"unknown runtime {name!r}", resolution=f"choose one of: {known}") from None


def sized_cpu_runtime(upstream: Manifest) -> Manifest:
    out = copy.deepcopy(upstream)
    name = out["metadata"]["name"]
    for c in out["spec"]["containers"]:
        if name in CPU_SIZES:
            c["resources"] = copy.deepcopy(CPU_SIZES[name])
        c["imagePullPolicy"] = "IfNotPresent"
    return out


def _gpu_container(image: str, *, command: list[str], args: list[str], memory: str) -> dict[str, Any]:
    return {
        "name": "kserve-container",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "args": args,
        "env": [{"name": "HF_HOME", "value": POD_TMP}, {"name": "HOME", "value": POD_TMP}],
        "resources": {"requests": {"cpu": "1", "memory": memory, GPU_RESOURCE: "1"},
                      "limits": {"memory": memory, GPU_RESOURCE: "1"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "Unconfined"}},
        "volumeMounts": [{"name": "devshm", "mountPath": SHM}],
        # large images and model loads: up to an hour before the first answer
        "startupProbe": {"httpGet": {"path": "/v1/models" if "vllm" in image else "/", "port": 8080},
                         "periodSeconds": 30, "failureThreshold": 120, "timeoutSeconds": 10},
    }


def _gpu_runtime(name: str, model_format: str, container: dict[str, Any], protocols: list[str]) -> Manifest:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": name},
        "spec": {
            "supportedModelFormats": [{"name": model_format, "autoSelect": False}],
            "protocolVersions": protocols,
            "containers": [container],
            "volumes": [{"name": "devshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
            "nodeSelector": {GPU_PRESENT_LABEL: "true", "kubernetes.io/arch": "amd64"},
        },
    }


def rocm_runtimes() -> list[Manifest]:
    vllm = _gpu_container(VLLM_ROCM_IMAGE, command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
                          args=["--port=8080", "--served-model-name={{.Name}}", "--model=/mnt/models"],
                          memory="16Gi")
    vllm["env"] += [{"name": "VLLM_CONFIG_ROOT", "value": POD_TMP},
                    {"name": "VLLM_WORKER_MULTIPROC_METHOD", "value": "spawn"}]
    torch = _gpu_container(PYTORCH_ROCM_IMAGE, command=["python3", "/mnt/models/serve.py"],
                           args=["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"],
                           memory="8Gi")
    return [_gpu_runtime("hk-vllm-rocm", "vLLM", vllm, ["v2"]),
            _gpu_runtime("hk-pytorch-rocm", "pytorch-rocm", torch, ["v1", "v2"])]
