"""NVIDIA GPUs: delegate to MicroK8s's own `nvidia` addon (GPU operator) instead of reimplementing it."""

from __future__ import annotations

from hybrid_knative.errors import CommandError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change
from hybrid_knative.platform.record import MicroK8sAddon, Undo
from hybrid_knative.system import microk8s

NAME = "enable_nvidia_addon"
TITLE = "Enable NVIDIA support (MicroK8s's nvidia addon)"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def run(ctx: Context, objs: list[Manifest]) -> None:
    mk = microk8s.command()  # MicroK8s's public command: its wrappers need MicroK8s's own environment
    status = ctx.runner.run([mk, "status", "--addon", "nvidia"], check=False, timeout=120)
    if status.returncode == 0 and status.stdout.strip() == "enabled":
        ctx.status.detail("the nvidia addon is already enabled")
    else:
        ctx.record.put_undo(Undo("microk8s-addon nvidia", MicroK8sAddon("nvidia"), step=NAME, component=ctx.component))
        nested = ctx.runner.with_env({"MICROK8S_ADDONS_SKIP_LOCK": "1"})  # nested enable from inside an addon
        try:
            nested.run([mk, "enable", "nvidia"], timeout=1800)
        except CommandError as exc:
            exc.brief = f"MicroK8s's nvidia addon failed (exit code {exc.returncode})"
            exc.resolution = ("run `sudo microk8s enable nvidia` to see the whole output; check the NVIDIA driver "
                              "with `nvidia-smi`, or run `sudo hybrid-knative repair --gpu none` to skip GPU support")
            raise


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    mk = microk8s.command()
    return [Change("command", "is the nvidia addon enabled?", f"{mk} status --addon nvidia", "run"),
            Change("command", "enable MicroK8s's nvidia addon unless it is (left enabled by disable)",
                   f"MICROK8S_ADDONS_SKIP_LOCK=1 {mk} enable nvidia", "run")]
