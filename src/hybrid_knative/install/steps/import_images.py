"""Air-gap: import the bundle's images (verified) into every node before anything is applied."""

from __future__ import annotations

from hybrid_knative.airgap.bundle import unpack
from hybrid_knative.airgap.importer import Target, import_images
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change

NAME = "import_images"
TITLE = "Import the bundle's images"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def run(ctx: Context, objs: list[Manifest]) -> None:
    bundle = ctx.config.bundle
    if bundle is None:
        return
    state = ctx.config.effective_state_dir
    unpacked = unpack(bundle, state / "bundles")
    report = import_images(unpacked, Target.cluster(ctx.config.snap), runner=ctx.runner, status=ctx.status,
                           state_dir=state)
    ctx.status.detail(f"{len(report.imported)} images imported, {len(report.skipped)} already there")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    bundle = rc.config.bundle
    if bundle is None:
        return []
    return [Change("command", f"import every image of {bundle.name} into every node",
                   "microk8s images import < <one archive of every image, streamed>", "run")]
