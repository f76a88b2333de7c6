"""Kubeflow Training Operator v1.9.4 standalone (no kustomize) and a ROCm PyTorchJob example.

The standalone overlay is applied structurally: namespace ``kubeflow`` on every namespaced object
(and on the ClusterRoleBinding's subject and the webhook's service), the overlay's image tag, the
base's JSON patch for the webhook (read from the pinned ``patch.yaml`` and applied, ``replace`` only),
the webhook kustomization's label. The overlay's empty ``training-operator-webhook-cert`` Secret is
replaced by ours (see :mod:`hybrid_knative.ml.pki`) and the webhook carries our ``caBundle``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import yaml

from hybrid_knative.catalog import ComponentVersion, load_catalog
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.ml import pki
from hybrid_knative.ml.runtimes import GPU_PRESENT_LABEL, GPU_RESOURCE, PYTORCH_ROCM_IMAGE, SHM
from hybrid_knative.upstream import UpstreamStore

Manifest = dict[str, Any]

COMPONENT = "training-operator"
NAMESPACE = "kubeflow"
DEPLOYMENT = "training-operator"
CRD_FILES = tuple(f"base/crds/kubeflow.org_{k}.yaml" for k in
                  ("tfjobs", "pytorchjobs", "xgboostjobs", "mpijobs", "paddlejobs", "jaxjobs"))
RESOURCE_FILES = ("base/rbac/cluster-role-binding.yaml", "base/rbac/role.yaml", "base/rbac/service-account.yaml",
                  "base/service.yaml", "base/deployment.yaml", "overlays/standalone/namespace.yaml")
WEBHOOK_LABELS = {"control-plane": "kubeflow-training-operator"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                  "MutatingWebhookConfiguration", "CustomResourceDefinition"}
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
CPU_IMAGE = "docker.io/pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"


def component() -> ComponentVersion:
    return load_catalog().extra_component(COMPONENT)


def _load(store: UpstreamStore, comp: ComponentVersion, name: str) -> list[Any]:
    f = comp.file(name)
    try:
        return [d for d in yaml.safe_load_all(store.read_text(f)) if d is not None]
    except yaml.YAMLError as exc:
        raise PermanentError(f"{f.path} is not valid YAML: {exc}") from None


def _overlay_image(store: UpstreamStore, comp: ComponentVersion) -> str:
    (kustomization,) = _load(store, comp, "overlays/standalone/kustomization.yaml")
    (image,) = kustomization["images"]
    return f"{image['name']}:{image['newTag']}"


def _json_patch(obj: Manifest, ops: list[dict[str, Any]]) -> Manifest:
    """RFC 6902 ``replace`` operations (all the pinned patch uses); anything else is refused."""
    out = copy.deepcopy(obj)
    for op in ops:
        if op.get("op") != "replace":
            raise PermanentError(f"unsupported JSON patch op {op.get('op')!r} in the training operator's patch.yaml")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
        target: Any = out
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = op["value"]
        else:
            if last not in target:
                raise PermanentError(f"patch path {op['path']} does not exist")
            target[last] = op["value"]
    return out


def _namespaced(obj: Manifest, labels: Mapping[str, str]) -> Manifest:
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    if out["kind"] not in CLUSTER_SCOPED:
        meta["namespace"] = NAMESPACE
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if out["kind"] == "ClusterRoleBinding":
        for subject in out.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = NAMESPACE
    return out


def render_crds(store: UpstreamStore, labels: Mapping[str, str]) -> list[Manifest]:
    comp = component()
    return [_namespaced(d, labels) for name in CRD_FILES for d in _load(store, comp, name)]


def render_operator(store: UpstreamStore, labels: Mapping[str, str], webhook: pki.WebhookPki) -> list[Manifest]:
    comp = component()
    image = _overlay_image(store, comp)
    out: list[Manifest] = []
    for name in RESOURCE_FILES:
        for doc in _load(store, comp, name):
            obj = _namespaced(doc, labels)
            if obj["kind"] == "Deployment":
                for c in obj["spec"]["template"]["spec"]["containers"]:
                    c["image"] = image
                    c["imagePullPolicy"] = "IfNotPresent"
                    c["resources"] = copy.deepcopy(RESOURCES)
            out.append(obj)
    (vwc,) = _load(store, comp, "base/webhook/manifests.yaml")
    ops = _load(store, comp, "base/webhook/patch.yaml")[0]
    vwc = _json_patch(vwc, ops)
    for hook in vwc["webhooks"]:
        hook["clientConfig"]["service"]["namespace"] = NAMESPACE
    vwc = _namespaced(vwc, {**WEBHOOK_LABELS, **labels})
    out.append(vwc)
    out.extend(webhook.secrets(pki.TRAINING, labels))
    return pki.with_ca_bundle(out, pki.TRAINING, webhook.ca_bundle)


def operator_images(store: UpstreamStore) -> list[str]:
    return [_overlay_image(store, component())]


# ------------------------------------------------------------------------------------------------
# `train example`: a PyTorchJob to edit and apply

_SCRIPT = """\
import os, socket, torch, torch.distributed as dist
backend = os.environ.get("HK_BACKEND", "nccl")
dist.init_process_group(backend)
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device("cuda", 0) if backend == "nccl" else torch.device("cpu")
t = torch.ones(1, device=device) * (rank + 1)
dist.all_reduce(t)
expected = world * (world + 1) / 2
print(f"rank {rank}/{world} on {socket.gethostname()}: hip={torch.version.hip} all_reduce={t.item()} "
      f"expected={expected}", flush=True)
assert t.item() == expected
dist.destroy_process_group()
"""
RCCL_ENV = {
    # RCCL speaks through PyTorch's "nccl" backend and reads NCCL_* variables
    "NCCL_SOCKET_IFNAME": "eth0",  # the pod network only (RCCL would also try veths)
    "NCCL_IB_DISABLE": "1",  # Ethernet-only nodes
    "NCCL_P2P_DISABLE": "1",  # avoids hangs between consumer GPUs without a P2P link
    "HSA_FORCE_FINE_GRAIN_PCIE": "1",  # needed where the IOMMU is not in passthrough mode
    "NCCL_DEBUG": "WARN",
}


def pytorchjob_example(*, name: str = "rocm-ddp-check", namespace: str = "default", rocm: bool = True,
                       workers: int = 1, gpus_per_pod: int = 1, image: str | None = None,
                       render_gid: int | None = None, hsa_override_gfx_version: str | None = None,
                       shm_size: str = "2Gi") -> Manifest:
    """A PyTorchJob (Master + ``workers`` Workers) that all-reduces a tensor across the pods."""
    if workers < 0 or workers > 64:
        raise ConfigError(f"--workers {workers} is out of range", resolution="use 0 to 64")
    if rocm and not 1 <= gpus_per_pod <= 16:
        raise ConfigError(f"--gpus {gpus_per_pod} is out of range", resolution="use 1 to 16 GPUs per pod")
    env = [{"name": "HK_BACKEND", "value": "nccl" if rocm else "gloo"}]
    container: dict[str, Any] = {
        "name": "pytorch",  # the operator finds the training container by this name
        "image": image or (PYTORCH_ROCM_IMAGE if rocm else CPU_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", _SCRIPT],
        "env": env,
        "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        "volumeMounts": [{"name": "dshm", "mountPath": SHM}],
    }
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}],
    }
    if rocm:
        env += [{"name": k, "value": v} for k, v in RCCL_ENV.items()]
        if hsa_override_gfx_version:
            env.append({"name": "HSA_OVERRIDE_GFX_VERSION", "value": hsa_override_gfx_version})
        container["resources"]["requests"][GPU_RESOURCE] = str(gpus_per_pod)
        container["resources"]["limits"][GPU_RESOURCE] = str(gpus_per_pod)
        container["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
        pod["nodeSelector"] = {GPU_PRESENT_LABEL: "true", "kubernetes.io/arch": "amd64"}
        if render_gid is not None:
            pod["securityContext"] = {"supplementalGroups": [render_gid]}  # /dev/kfd + renderD* group
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": pod}}
    specs: dict[str, Any] = {"Master": replica}
    if workers:
        specs["Worker"] = {**copy.deepcopy(replica), "replicas": workers}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 2}, "pytorchReplicaSpecs": specs}}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the script) as literal blocks, so the YAML is pleasant to edit."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Manifest) -> str:
    return yaml.dump(json.loads(json.dumps(obj)), Dumper=_Dumper, sort_keys=False)
