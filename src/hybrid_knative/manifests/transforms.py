"""Structured transforms on rendered objects (no sed): each takes objects and returns new ones."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from hybrid_knative.kube.objects import Manifest, containers


def without_kinds(objs: Iterable[Manifest], kinds: set[str]) -> list[Manifest]:
    return [o for o in objs if o.get("kind") not in kinds]


def fix_pdb(obj: Manifest) -> Manifest:
    """Upstream PDBs use minAvailable: 80%, which blocks every drain with one replica."""
    if obj.get("kind") != "PodDisruptionBudget":
        return obj
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    spec.pop("minAvailable", None)
    spec["maxUnavailable"] = 1
    return out


def pin_images(obj: Manifest, pins: Mapping[str, str]) -> Manifest:
    """Replace floating image references with the pinned ones of the component."""
    if not pins or not any(c.get("image") in pins for c in containers(obj)):
        return obj  # nothing to pin: no copy (CRDs and RBAC are most of a release file)
    out = copy.deepcopy(obj)
    for c in containers(out):
        image = c.get("image")
        if isinstance(image, str) and image in pins:
            c["image"] = pins[image]
    return out


def standard_transforms(objs: Iterable[Manifest], pins: Mapping[str, str]) -> list[Manifest]:
    return [pin_images(fix_pdb(o), pins) for o in objs]


def with_labels(obj: Manifest, labels: Mapping[str, str]) -> Manifest:
    """``obj`` with ``labels`` added to its metadata (a copy when anything changes)."""
    have = (obj.get("metadata") or {}).get("labels") or {}
    if all(have.get(k) == v for k, v in labels.items()):
        return obj
    # copy only the path that changes (object → metadata → labels): the rest is shared, as every transform
    # copies before it changes anything
    meta = dict(obj.get("metadata") or {})
    meta["labels"] = {**have, **labels}
    return {**obj, "metadata": meta}
