"""`model serve`: an InferenceService for a model in the store (or at a pvc://, oci://, gridfs:// URI).

CPU runtimes run in Knative mode (scale to zero, a URL through Kourier). GPU runtimes default to
KServe's Standard mode with ``deploymentStrategy: Recreate``: with one GPU, a Knative rollout would
start the new revision while the old one still holds the GPU and wait forever. ``--knative`` keeps
Knative mode for GPU models (with a warning and a 30-minute progress deadline for the large images).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hybrid_knative.errors import ConfigError
from hybrid_knative.ml.models import check_name
from hybrid_knative.ml.runtimes import GPU_RESOURCE, Runtime
from hybrid_knative.ml.store import SERVING_ACCOUNT

Manifest = dict[str, Any]

SCHEMES = ("s3://", "pvc://", "oci://", "gridfs://")
GRIDFS_STORAGE_CONTAINER = "hk-gridfs"
PROJECT_LABEL = "hybrid-knative.dev/project"
FUNCTION_LABEL = "hybrid-knative.dev/function"
MODEL_LABEL = "hybrid-knative.dev/model"
DIGEST_ANNOTATION = "hybrid-knative.dev/model-digest"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
GPU_PROGRESS_DEADLINE = "1800s"
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class ServeRequest:
    name: str
    namespace: str
    runtime: Runtime
    storage_uri: str
    gpus: int = 0
    knative_for_gpu: bool = False
    min_replicas: int | None = None
    render_gid: int | None = None
    digest: str | None = None


def check_uri(uri: str, *, gridfs_enabled: bool) -> str:
    if not uri.startswith(SCHEMES):
        raise ConfigError(f"unsupported model URI {uri!r}",
                          resolution=f"use one of: {', '.join(SCHEMES)} (or a model name pushed with `model push`)")
    if uri.startswith("gridfs://") and not gridfs_enabled:
        raise ConfigError("gridfs:// models need the GridFS backend",
                          resolution="enable it: `hybrid-knative enable --with ml --model-backend gridfs` "
                          "(see docs/ml.md: when not to use GridFS)")
    return uri


def check_gpu(runtime: Runtime, gpus: int, cluster_gpus: int) -> int:
    """How many GPUs the predictor asks for; refuses what the cluster cannot schedule."""
    if gpus < 0 or gpus > 16:
        raise ConfigError(f"--gpu {gpus} is out of range", resolution="use 0 to 16")
    if runtime.gpu:
        gpus = gpus or 1
        if cluster_gpus <= 0:
            raise ConfigError(f"runtime {runtime.name} needs an AMD GPU, and no node of this cluster offers "
                              f"{GPU_RESOURCE}",
                              resolution="enable GPU support on a node with an AMD GPU (`hybrid-knative enable "
                              "--gpu amd`), or pick a CPU runtime (sklearn, xgboost, lightgbm, huggingface)")
        if gpus > cluster_gpus:
            raise ConfigError(f"--gpu {gpus}: the cluster offers only {cluster_gpus} {GPU_RESOURCE}",
                              resolution=f"ask for at most {cluster_gpus}")
    elif gpus:
        raise ConfigError(f"runtime {runtime.name} runs on CPU; --gpu is for the ROCm runtimes",
                          resolution="use --runtime vllm-rocm or pytorch-rocm, or drop --gpu")
    return gpus


def cluster_gpus(nodes: Iterable[Mapping[str, Any]]) -> int:
    """``amd.com/gpu`` allocatable over all nodes."""
    total = 0
    for node in nodes:
        value = ((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE, "0")
        try:
            total += int(str(value))
        except ValueError:
            continue
    return total


def render_inference_service(req: ServeRequest) -> Manifest:
    check_name(req.name)
    if not _NAMESPACE_RE.match(req.namespace):
        raise ConfigError(f"invalid namespace {req.namespace!r}")
    model: dict[str, Any] = {
        "modelFormat": {"name": req.runtime.model_format},
        "runtime": req.runtime.cluster_runtime,
        "storageUri": req.storage_uri,
    }
    predictor: dict[str, Any] = {"model": model}
    if req.storage_uri.startswith("s3://"):
        predictor["serviceAccountName"] = SERVING_ACCOUNT
    if req.storage_uri.startswith("gridfs://"):
        predictor["storageContainerName"] = GRIDFS_STORAGE_CONTAINER
    annotations: dict[str, str] = {}
    if req.digest:
        annotations[DIGEST_ANNOTATION] = req.digest
    if req.min_replicas is not None:
        predictor["minReplicas"] = req.min_replicas
    if req.runtime.gpu:
        model["resources"] = {"requests": {GPU_RESOURCE: str(req.gpus)}, "limits": {GPU_RESOURCE: str(req.gpus)}}
        if req.render_gid is not None:
            predictor["securityContext"] = {"supplementalGroups": [req.render_gid]}
        if req.knative_for_gpu:
            predictor["annotations"] = {"serving.knative.dev/progress-deadline": GPU_PROGRESS_DEADLINE}
            predictor.setdefault("minReplicas", 1)  # a cold start of a 15 GB image is not a request timeout
        else:
            annotations[DEPLOYMENT_MODE] = "Standard"
            predictor["deploymentStrategy"] = {"type": "Recreate"}
    meta: dict[str, Any] = {"name": req.name, "namespace": req.namespace,
                            "labels": {PROJECT_LABEL: req.namespace, FUNCTION_LABEL: req.name, MODEL_LABEL: req.name}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor}}


def gpu_warning(req: ServeRequest) -> str | None:
    if req.runtime.gpu and req.knative_for_gpu:
        return ("Knative mode with a GPU: a new revision cannot start while the old one holds the GPU "
                "(single-GPU nodes); delete and re-create the model to update it, or drop --knative")
    return None


def predict_url(isvc: Mapping[str, Any]) -> str | None:
    """The URL KServe reports once the InferenceService is Ready (``status.url``)."""
    status = isvc.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    url = status.get("url")
    return str(url) if ready and url else None
