"""NVIDIA GPUs: delegate to MicroK8s's own `nvidia` addon (GPU operator) instead of reimplementing it."""

from __future__ import annotations

from hybrid_knative.errors import CommandError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change
from hybrid_knative.platform.record import MicroK8sAddon, Undo

NAME = "enable_nvidia_addon"
TITLE = "Enable NVIDIA support (MicroK8s's nvidia addon)"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def run(ctx: Context, objs: list[Manifest]) -> None:
    snap = ctx.config.snap.snap
    status = ctx.runner.run([snap / "microk8s-status.wrapper", "--addon", "nvidia"], check=False, timeout=120)
    if status.returncode == 0 and status.stdout.strip() == "enabled":
        ctx.status.detail("the nvidia addon is already enabled")
    else:
        ctx.record.put_undo(Undo("microk8s-addon nvidia", MicroK8sAddon("nvidia"), step=NAME, component=ctx.component))
        nested = ctx.runner.with_env({"MICROK8S_ADDONS_SKIP_LOCK": "1"})  # nested enable from inside an addon
        try:
            nested.run([snap / "microk8s-enable.wrapper", "nvidia"], timeout=1800)
        except CommandError as exc:
            exc.brief = f"MicroK8s's nvidia addon failed (exit code {exc.returncode})"
            exc.resolution = ("run `sudo microk8s enable nvidia` to see the whole output; check the NVIDIA driver "
                              "with `nvidia-smi`, or re-run with --gpu none to skip GPU support")
            raise


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    snap = rc.config.snap.snap
    return [Change("command", "is the nvidia addon enabled?", f"{snap / 'microk8s-status.wrapper'} --addon nvidia",
                   "run"),
            Change("command", "enable MicroK8s's nvidia addon unless it is (left enabled by disable)",
                   f"MICROK8S_ADDONS_SKIP_LOCK=1 {snap / 'microk8s-enable.wrapper'} nvidia", "run")]
