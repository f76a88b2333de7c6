"""MicroK8s's own images (calico, coredns, pause…): nothing to install, but every air-gap bundle
carries them (the node cannot pull them either)."""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_knative.catalog import load_catalog
from hybrid_knative.config import Config
from hybrid_knative.manifests.images import parse_image_list
from hybrid_knative.platform.component import Component
from hybrid_knative.platform.context import HostFacts, RenderContext


def never(config: Config, host: HostFacts) -> bool:
    return False


def images(rc: RenderContext) -> Sequence[str]:
    f = load_catalog().extra_component("microk8s").file("images.txt")
    return [str(i) for i in parse_image_list(rc.store.read_text(f), source="microk8s/images.txt")]


COMPONENT = Component(name="microk8s", title="MicroK8s's own images", enabled=never, bundle_images=images,
                      bundle_always=True)
