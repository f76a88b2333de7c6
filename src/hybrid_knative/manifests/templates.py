"""Our own objects are Jinja2 templates in a component's ``templates/`` folder (StrictUndefined: a
missing value is an error, never an empty string). Values go through ``|tojson`` in the templates."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests.load import load_documents


@functools.lru_cache(maxsize=32)
def environment(folder: str) -> jinja2.Environment:
    """The one Jinja environment of a template folder (cached per folder)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, not HTML; values are passed through |tojson
        keep_trailing_newline=True,
    )


def template_objects(component_dir: Path, name: str, values: Mapping[str, Any]) -> list[Manifest]:
    """Render ``<component_dir>/templates/<name>`` with ``values`` and load its objects."""
    source = f"{component_dir.name}/templates/{name}"
    try:
        text = environment(str(component_dir / "templates")).get_template(name).render(**values)
    except jinja2.TemplateError as exc:
        raise PermanentError(f"cannot render template {source}: {exc}") from None
    return load_documents(text, source=source)
