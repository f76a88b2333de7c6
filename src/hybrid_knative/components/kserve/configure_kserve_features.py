"""The Knative Serving features KServe's predictor pods need (keys merged into config-features)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import kserve
from hybrid_knative.platform.apply import merge_config_maps
from hybrid_knative.platform.context import Context, RenderContext

NAME = "configure_kserve_features"
TITLE = "Allow KServe's pod settings in Knative Services"


def render(rc: RenderContext) -> list[Manifest]:
    return [kserve.knative_features()]


def run(ctx: Context, objs: list[Manifest]) -> None:
    merge_config_maps(ctx, objs)
