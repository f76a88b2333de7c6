"""Serving runtimes: sklearn, xgboost, lightgbm, huggingface (CPU); vLLM and PyTorch on ROCm on AMD GPU hosts."""

from __future__ import annotations

from pathlib import Path

from hybrid_knative.airgap.bundle import read_manifest as read_bundle_manifest
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests.images import ImageRef
from hybrid_knative.ml import images, kserve
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.system.gpu import choose_vendor

NAME = "install_kserve_runtimes"
TITLE = "Install the model serving runtimes"


BUNDLE_OPTION = "ml-rocm"  # components/kserve_rocm: `bundle create --with ml-rocm`


def bundle_lacks_rocm(bundle: Path) -> list[str]:
    """The ROCm serving images a bundle does not carry (they are only in bundles made with --with ml-rocm)."""
    carried = {ImageRef.parse(i.name) for i in read_bundle_manifest(bundle).images}
    return [image for image in images.ROCM_IMAGES if ImageRef.parse(image) not in carried]


def render(rc: RenderContext) -> list[Manifest]:
    rocm = choose_vendor(rc.config.gpu, rc.host.gpu) == "amd"
    if rocm and rc.config.bundle is not None:
        missing = bundle_lacks_rocm(rc.config.bundle)
        if missing:  # refused while planning: nothing is applied yet
            raise ConfigError(
                f"the bundle {rc.config.bundle.name} has no ROCm serving images, which `--with ml` on this AMD GPU "
                "host installs (the vLLM and PyTorch ROCm runtimes)",
                details="missing: " + ", ".join(missing),
                resolution=f"create the bundle with `hybrid-knative bundle create --with ml --with {BUNDLE_OPTION} "
                "--arch amd64 ...` (adds 10-20 GB per image), or enable with `--gpu none` to leave the GPU "
                "(and the ROCm runtimes) out")
    return kserve.render_runtimes(rc.store, platform_labels("kserve"), rocm=rocm)


def run(ctx: Context, objs: list[Manifest]) -> None:
    apply_objects(ctx, NAME, objs)
