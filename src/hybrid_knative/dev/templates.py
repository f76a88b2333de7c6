"""Project templates shipped inside the package (they work offline): python/node × http/cloudevents and the
Serverless Framework's knative-docker layout. Files ending in ``.j2`` are rendered (Jinja2, StrictUndefined)
with the project's name; every other file is copied as it is."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import jinja2

from hybrid_knative.dev.project import DNS_LABEL, MAX_SERVICE_NAME
from hybrid_knative.errors import ConfigError

TEMPLATES = ("python-http", "python-cloudevents", "node-http", "node-cloudevents", "knative-docker")
INTERNAL = ("event-display",)
# The base image each template's Dockerfile starts FROM (bundle create --with functions carries these).
# Shipped without a leading dot (package data globs skip hidden files); written with it.
HIDDEN = {"dockerignore": ".dockerignore"}
BASE_IMAGES = ("docker.io/library/python:3.12-slim", "docker.io/library/node:22-slim")


def template_root(name: str) -> Traversable:
    if name not in TEMPLATES + INTERNAL:
        raise ConfigError(f"unknown template {name!r}", resolution=f"use one of: {', '.join(TEMPLATES)}")
    return resources.files("hybrid_knative.dev").joinpath("templates").joinpath(name)


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            found += _walk(child, (*prefix, child.name))
        else:
            found.append(((*prefix, child.name), child))
    return found


def template_files(name: str) -> list[tuple[str, Traversable]]:
    return [("/".join(parts), node) for parts, node in _walk(template_root(name))]


def create(name: str, template: str, dest: Path, *, force: bool = False) -> list[Path]:
    """Write a new project ``name`` from ``template`` into ``dest``; refuse to overwrite unless ``force``."""
    if not DNS_LABEL.match(name) or len(name) > MAX_SERVICE_NAME - 12:
        raise ConfigError(f"invalid function name {name!r}",
                          resolution="use lower-case letters, digits and '-', starting with a letter, at most "
                          f"{MAX_SERVICE_NAME - 12} characters")
    files = template_files(template)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ConfigError(f"{dest} exists and is not empty", resolution="choose another name or folder (--path)")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 - YAML/Markdown, not HTML
    written = []
    for rel, node in files:
        out = rel[:-3] if rel.endswith(".j2") else rel
        target = dest / HIDDEN.get(out, out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".j2"):
            target.write_text(env.from_string(node.read_text(encoding="utf-8")).render(name=name), encoding="utf-8")
        else:
            target.write_bytes(node.read_bytes())
        written.append(target)
    return written


def materialize(template: str, dest: Path) -> Path:
    """Copy an internal template (e.g. event-display) to ``dest`` for building; return the folder."""
    for rel, node in template_files(template):
        target = dest / HIDDEN.get(rel, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(node.read_bytes())
    return dest
