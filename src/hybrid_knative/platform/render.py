"""Rendering a component's upstream files (verified through the RenderContext's store)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests import load_pinned, standard_transforms, without_kinds
from hybrid_knative.platform.context import RenderContext


def upstream_objects(rc: RenderContext, component: str, filename: str) -> list[Manifest]:
    """The parsed documents of one pinned upstream file (parsed once per process; a fresh copy each call)."""
    f = rc.release.component(component).file(filename)
    rc.store.path(f)  # available and verified in this store (cheap after the first time)
    return load_pinned(f.sha256, lambda: rc.store.read_text(f), source=f.path)


def component_objects(rc: RenderContext, component: str, filename: str, *, drop_crds: bool = False) -> list[Manifest]:
    """One upstream file of a component with the standard transforms (PDB fix, the component's image pins).

    ``drop_crds`` for core files that repeat the CRDs an earlier step applied and awaited.
    """
    objs = upstream_objects(rc, component, filename)
    if drop_crds:
        objs = without_kinds(objs, {"CustomResourceDefinition"})
    return standard_transforms(objs, rc.release.component(component).image_pins)
