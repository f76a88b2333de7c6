"""AMD GPUs: node labels from the host probe, the ROCm device plugin, Knative features GPU pods need."""

from __future__ import annotations

from hybrid_knative.components.gpu_amd import configure_gpu_features, install_rocm_device_plugin, label_gpu_nodes
from hybrid_knative.config import Config
from hybrid_knative.platform.component import Component, Step
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.system.gpu import choose_vendor


def enabled(config: Config, host: HostFacts) -> bool:
    return choose_vendor(config.gpu, host.gpu) == "amd"


COMPONENT = Component(
    name="gpu-amd",
    title="AMD GPU support (ROCm)",
    upstream="rocm-device-plugin",
    steps=(Step.of(label_gpu_nodes, applies=False), Step.of(install_rocm_device_plugin),
           Step.of(configure_gpu_features, applies=False)),
    enabled=enabled,
    after=("dns",),
    bundle_option="gpu",
)
