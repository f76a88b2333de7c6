"""The AMD ROCm device plugin and node labeller, pinned; waits until this node offers amd.com/gpu."""

from __future__ import annotations

from hybrid_knative.components.gpu_amd import rocm as gpu
from hybrid_knative.kube import ready
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.kube.wait import Check, wait_all
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.context import Context, RenderContext

NAME = "install_rocm_device_plugin"
TITLE = "Install the AMD ROCm device plugin"


def render(rc: RenderContext) -> list[Manifest]:
    return gpu.render_device_plugin(rc)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
    checks: dict[str, Check] = {
        f"DaemonSet {gpu.NAMESPACE}/{name}": ready.daemonset_ready(ctx.kube, gpu.NAMESPACE, name)
        for name in gpu.daemonset_names(objs)
    }
    node = ctx.render.host.node_name
    if node is not None:
        checks[f"Node {node} allocatable amd.com/gpu"] = ready.node_allocatable(ctx.kube, node, "amd.com/gpu")
    wait_all(checks, policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note,
             resolution="see `microk8s kubectl -n kube-system logs ds/amdgpu-device-plugin-daemonset`; the plugin "
             "scans for GPUs once at start, so after loading the amdgpu driver restart it: "
             "`microk8s kubectl -n kube-system rollout restart ds/amdgpu-device-plugin-daemonset`")
