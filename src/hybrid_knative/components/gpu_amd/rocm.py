"""AMD GPUs: the ROCm device plugin render, node labels, the PyTorch-on-ROCm template."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml

from hybrid_knative.catalog import ComponentVersion, load_catalog
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.objects import Manifest, containers
from hybrid_knative.manifests import load_documents, template_objects
from hybrid_knative.platform.context import RenderContext
from hybrid_knative.system.gpu import GpuReport

COMPONENT = "rocm-device-plugin"
NAMESPACE = "kube-system"
PRESENT_LABEL = "amd.com/gpu.present"
GFX_LABEL = "amd.com/gpu.gfx-target"
RENDER_GID_ANNOTATION = "hybrid-knative.io/render-gid"
# A plain, explicit tag (never latest): ROCm 6.4 with PyTorch 2.6. Override with --image.
PYTORCH_IMAGE = "docker.io/rocm/pytorch:rocm6.4.1_ubuntu24.04_py3.12_pytorch_release_2.6.0"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"}


def component(rc: RenderContext) -> ComponentVersion:
    return load_catalog().extra_component(COMPONENT)


def pinned_images(rc: RenderContext) -> dict[str, str]:
    """Image references from the pinned Helm values (dp and lbl)."""
    values = yaml.safe_load(rc.store.read_text(component(rc).file("values.yaml")))
    dp, lbl = values["dp"]["image"], values["lbl"]["image"]
    return {"dp": f"{dp['repository']}:{dp['tag']}", "lbl": f"{lbl['repository']}:{lbl['tag']}"}


def _fix(obj: Manifest, image: str) -> Manifest:
    out = copy.deepcopy(obj)
    if out["kind"] in CLUSTER_SCOPED:
        out["metadata"].pop("namespace", None)  # upstream puts `namespace: default` on a ClusterRoleBinding
    if out["kind"] == "DaemonSet":
        pod = out["spec"]["template"]["spec"]
        # only nodes we labelled as having a usable AMD GPU (the images are amd64-only)
        pod["nodeSelector"] = {"kubernetes.io/arch": "amd64", PRESENT_LABEL: "true"}
        for c in containers(out):
            c["image"] = image
            c["imagePullPolicy"] = "IfNotPresent"
    return out


def render_device_plugin(rc: RenderContext) -> list[Manifest]:
    comp = component(rc)
    images = pinned_images(rc)
    out: list[Manifest] = []
    for fname, image in (("k8s-ds-amdgpu-dp.yaml", images["dp"]), ("k8s-ds-amdgpu-labeller.yaml", images["lbl"])):
        f = comp.file(fname)
        out.extend(_fix(o, image) for o in load_documents(rc.store.read_text(f), source=f.path))
    return out


def node_labels(report: GpuReport | None) -> tuple[dict[str, str], dict[str, str]]:
    if report is None:
        return {PRESENT_LABEL: "true"}, {}
    return report.labels(), report.annotations()


def pytorch_pod_spec(*, gpus: int, image: str, render_gid: int | None, hsa_override_gfx_version: str | None,
                     shm_size: str, serve_http: bool) -> dict[str, Any]:
    script = ["import os, torch", 'print("ROCm/HIP", torch.version.hip, "GPU:", torch.cuda.is_available(), flush=True)']
    if serve_http:
        script += [
            "from http.server import BaseHTTPRequestHandler, HTTPServer",
            "class H(BaseHTTPRequestHandler):",
            "    def do_GET(self):",
            "        ok = torch.cuda.is_available()",
            '        body = (torch.cuda.get_device_name(0) if ok else "no GPU").encode() + b"\\n"',
            "        self.send_response(200 if ok else 503); self.end_headers(); self.wfile.write(body)",
            'HTTPServer(("", int(os.environ.get("PORT", "8080"))), H).serve_forever()',
        ]
    else:
        script += ['x = torch.ones(3, 3, device="cuda"); print((x + x).sum().item())']
    container: dict[str, Any] = {
        "name": "pytorch",
        "image": image,
        "command": ["python3", "-c", "\n".join(script) + "\n"],
        "resources": {"limits": {"amd.com/gpu": gpus}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],  # noqa: S108 - a memory-backed volume
    }
    if serve_http:
        container["ports"] = [{"containerPort": 8080}]
    if hsa_override_gfx_version:
        container["env"] = [{"name": "HSA_OVERRIDE_GFX_VERSION", "value": hsa_override_gfx_version}]
    security: dict[str, Any] = {"seccompProfile": {"type": "Unconfined"}}
    if render_gid is not None:
        security["supplementalGroups"] = [render_gid]
    spec: dict[str, Any] = {
        "securityContext": security,
        "containers": [container],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}],
    }
    if not serve_http:
        spec["restartPolicy"] = "Never"
    return spec


def render_pytorch(*, kind: Literal["ksvc", "pod"] = "ksvc", name: str = "pytorch-rocm", namespace: str = "default",
                   gpus: int = 1, image: str = PYTORCH_IMAGE, render_gid: int | None = None,
                   hsa_override_gfx_version: str | None = None, shm_size: str = "8Gi") -> list[Manifest]:
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}")
    if hsa_override_gfx_version is not None and not _is_gfx_override(hsa_override_gfx_version):
        raise ConfigError(f"not an HSA_OVERRIDE_GFX_VERSION: {hsa_override_gfx_version!r}",
                          resolution="use MAJOR.MINOR.STEPPING, e.g. 10.3.0 or 11.0.0")
    if image.endswith(":latest") or image.endswith("-latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise ConfigError(f"image {image!r} is not pinned", resolution="use an explicit tag or a digest")
    spec = pytorch_pod_spec(gpus=gpus, image=image, render_gid=render_gid,
                            hsa_override_gfx_version=hsa_override_gfx_version, shm_size=shm_size,
                            serve_http=kind == "ksvc")
    return template_objects(Path(__file__).parent, "pytorch-rocm.yaml.j2",
                            {"kind": kind, "name": name, "namespace": namespace, "pod_spec": spec})


def _is_gfx_override(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 3 and all(p.isdigit() and len(p) <= 3 for p in parts)


def daemonset_names(objs: Iterable[Manifest]) -> list[str]:
    return [o["metadata"]["name"] for o in objs if o["kind"] == "DaemonSet"]
