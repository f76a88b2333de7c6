"""Moved: pure parts to hybrid_knative.manifests, upstream rendering to hybrid_knative.platform.render."""

from hybrid_knative.manifests import fix_pdb, load_documents, pin_images, standard_transforms, without_kinds
from hybrid_knative.platform.render import component_objects, upstream_objects

__all__ = ["component_objects", "fix_pdb", "load_documents", "pin_images", "standard_transforms", "upstream_objects",
           "without_kinds"]
