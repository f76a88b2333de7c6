"""Rendering: upstream files (verified) + our templates → manifests, with structured transforms."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
import yaml

from hybrid_knative.catalog import COMPONENTS_DIR
from hybrid_knative.errors import PermanentError
from hybrid_knative.install.context import RenderContext
from hybrid_knative.kube.objects import Manifest, containers

# the C loader is ~10x faster on the 500 kB Knative files; PyYAML without libyaml has only the Python one
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_documents(text: str, *, source: str) -> list[Manifest]:
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise PermanentError(f"{source} is not valid YAML: {exc}") from None
    objs = [d for d in docs if d]
    for d in objs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise PermanentError(f"{source} contains a document that is not a Kubernetes object")
    return objs


def upstream_objects(rc: RenderContext, component: str, filename: str) -> list[Manifest]:
    f = rc.release.component(component).file(filename)
    return load_documents(rc.store.read_text(f), source=f.path)


@functools.lru_cache(maxsize=1)
def _jinja() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(COMPONENTS_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, not HTML; values are passed through |tojson
        keep_trailing_newline=True,
    )


def template_objects(component: str, name: str, values: Mapping[str, Any]) -> list[Manifest]:
    try:
        text = _jinja().get_template(f"{component}/templates/{name}").render(**values)
    except jinja2.TemplateError as exc:
        raise PermanentError(f"cannot render template {component}/{name}: {exc}") from None
    return load_documents(text, source=f"{component}/templates/{name}")


# --- structured transforms (no sed) ------------------------------------------------------------

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
    if not pins:
        return obj
    out = copy.deepcopy(obj)
    for c in containers(out):
        image = c.get("image")
        if isinstance(image, str) and image in pins:
            c["image"] = pins[image]
    return out


def standard_transforms(objs: Iterable[Manifest], pins: Mapping[str, str]) -> list[Manifest]:
    return [pin_images(fix_pdb(o), pins) for o in objs]


def component_objects(rc: RenderContext, component: str, filename: str, *, drop_crds: bool = False) -> list[Manifest]:
    """One upstream file of a component with the standard transforms (PDB fix, the component's image pins).

    ``drop_crds`` for core files that repeat the CRDs an earlier step applied and awaited.
    """
    objs = upstream_objects(rc, component, filename)
    if drop_crds:
        objs = without_kinds(objs, {"CustomResourceDefinition"})
    return standard_transforms(objs, rc.release.component(component).image_pins)
