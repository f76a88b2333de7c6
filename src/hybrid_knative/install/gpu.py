"""Moved to hybrid_knative.components.gpu_amd.rocm (the AMD component) and system.gpu.choose_vendor."""

from hybrid_knative.components.gpu_amd.rocm import (
    CLUSTER_SCOPED,
    COMPONENT,
    GFX_LABEL,
    NAMESPACE,
    PRESENT_LABEL,
    PYTORCH_IMAGE,
    RENDER_GID_ANNOTATION,
    daemonset_names,
    node_labels,
    pinned_images,
    pytorch_pod_spec,
    render_device_plugin,
    render_pytorch,
)
from hybrid_knative.options import GPU_MODES, GpuVendor
from hybrid_knative.system.gpu import choose_vendor

__all__ = ["CLUSTER_SCOPED", "COMPONENT", "GFX_LABEL", "GPU_MODES", "NAMESPACE", "PRESENT_LABEL", "PYTORCH_IMAGE",
           "RENDER_GID_ANNOTATION", "GpuVendor", "choose_vendor", "daemonset_names", "node_labels", "pinned_images",
           "pytorch_pod_spec", "render_device_plugin", "render_pytorch"]
