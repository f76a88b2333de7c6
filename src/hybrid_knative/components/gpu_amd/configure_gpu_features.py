"""Knative features GPU workloads need: pod securityContext (render group, seccomp) and emptyDir (/dev/shm)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.apply import merge_config_maps
from hybrid_knative.platform.context import Context, RenderContext

NAME = "configure_gpu_features"
TITLE = "Allow GPU pod settings in Knative Services"


def render(rc: RenderContext) -> list[Manifest]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "config-features", "namespace": "knative-serving"},
             "data": {"kubernetes.podspec-securitycontext": "enabled", "kubernetes.podspec-emptydir": "enabled"}}]


def run(ctx: Context, objs: list[Manifest]) -> None:
    merge_config_maps(ctx, objs)
