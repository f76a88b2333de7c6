"""Knative Serving settings: Kourier as ingress class, MicroK8s's registry skips tag resolution.

Merge-patches only our keys into the upstream ConfigMaps (after the webhook is ready — it
validates them). A key that already has our value is not written again.
"""

from __future__ import annotations

from pathlib import Path

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests import template_objects
from hybrid_knative.platform.apply import merge_config_maps
from hybrid_knative.platform.context import Context, RenderContext

NAME = "configure_serving"
TITLE = "Configure Knative Serving for Kourier and MicroK8s's registry"

KOURIER_INGRESS_CLASS = "kourier.ingress.networking.knative.dev"
UPSTREAM_SKIP_TAG_RESOLVING = ("kind.local", "ko.local", "dev.local")
MICROK8S_REGISTRIES = ("localhost:32000", "127.0.0.1:32000")


def render(rc: RenderContext) -> list[Manifest]:
    return template_objects(Path(__file__).parent, "serving-config.yaml.j2", {
        "ingress_class": KOURIER_INGRESS_CLASS,
        "registries_skipping_tag_resolving": [*UPSTREAM_SKIP_TAG_RESOLVING, *MICROK8S_REGISTRIES],
    })


def run(ctx: Context, objs: list[Manifest]) -> None:
    merge_config_maps(ctx, objs)
