"""Image references and lists live in the manifests layer (shared with install, dev and clone)."""

from __future__ import annotations

from hybrid_knative.manifests.images import (
    DOCKER_HUB,
    ImageRef,
    images_in,
    parse_image_list,
    read_image_list,
    scan_strings,
    structured_images,
    unlisted,
)

__all__ = ["DOCKER_HUB", "ImageRef", "images_in", "parse_image_list", "read_image_list", "scan_strings",
           "structured_images", "unlisted"]
