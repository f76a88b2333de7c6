"""Manifests as data: load YAML, render our Jinja2 templates (StrictUndefined), structural transforms
(no sed), image lists. Pure: no cluster, no Context — used by install, airgap, and later dev and clone."""

from __future__ import annotations

from hybrid_knative.manifests.load import dump, dump_all, load_documents, load_file, load_pinned
from hybrid_knative.manifests.templates import template_objects
from hybrid_knative.manifests.transforms import fix_pdb, pin_images, standard_transforms, with_labels, without_kinds

__all__ = ["dump", "dump_all", "fix_pdb", "load_documents", "load_file", "load_pinned", "pin_images",
           "standard_transforms", "template_objects",
           "with_labels", "without_kinds"]
