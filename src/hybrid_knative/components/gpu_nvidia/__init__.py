"""NVIDIA GPUs: delegated to MicroK8s's own nvidia addon (its GPU operator)."""

from __future__ import annotations

from hybrid_knative.components.gpu_nvidia import enable_nvidia_addon
from hybrid_knative.config import Config
from hybrid_knative.platform.component import Component, Step
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.system.gpu import choose_vendor


def enabled(config: Config, host: HostFacts) -> bool:
    return choose_vendor(config.gpu, host.gpu) == "nvidia"


COMPONENT = Component(
    name="gpu-nvidia",
    title="NVIDIA GPU support (MicroK8s's nvidia addon)",
    steps=(Step.of(enable_nvidia_addon),),
    enabled=enabled,
    after=("dns",),
)
