"""ROCm serving images for air-gap bundles (`bundle create --with ml-rocm`): vLLM on ROCm and PyTorch on ROCm.

Nothing to install — the ROCm ClusterServingRuntimes are the kserve component's (installed on AMD GPU
hosts). Their images are 10–20 GB each and published for amd64 only, so a bundle carries them only when
asked; ``ml-rocm`` implies ``ml``. `enable --bundle` on an AMD GPU host refuses a bundle without them
(components/kserve/install_kserve_runtimes.py). See docs/ml.md, "Air-gap".
"""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_knative.config import Config
from hybrid_knative.ml import images
from hybrid_knative.platform.component import Component
from hybrid_knative.platform.context import HostFacts, RenderContext

OPTION = "ml-rocm"


def never(config: Config, host: HostFacts) -> bool:
    return False


def rocm_images(rc: RenderContext) -> Sequence[str]:
    return list(images.ROCM_IMAGES)


COMPONENT = Component(
    name="kserve-rocm",
    title="ROCm serving images (vLLM, PyTorch; amd64, 10-20 GB each) for bundles",
    enabled=never,
    bundle_images=rocm_images,
    bundle_option=OPTION,
    bundle_requires=("ml",),
    bundle_arches=("amd64",),
)
