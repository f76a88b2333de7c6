"""Image references: parsing, normalisation, and the image list derived from rendered objects.

The list is derived from the exact objects `enable` applies (every step), so a new step's images
follow automatically. Images hide in more places than ``containers[].image``: Knative ``Image``
caching CRs, ConfigMap values such as ``queue-sidecar-image`` in config-deployment, and
``*_IMAGE`` environment variables of controllers. A deep scan of every string catches the rest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.objects import Manifest, containers, images

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_HOST = re.compile(r"^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+)(?::\d{1,5})?$")
# a token that is certainly an image reference: a dotted registry host, a path, and a tag or a digest
_SCAN = re.compile(r"^(?:[a-z0-9-]+\.[a-z0-9.-]+|localhost)(?::\d+)?/[a-z0-9._/-]+"
                   r"(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
DOCKER_HUB = "docker.io"


@dataclasses.dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised image reference: ``registry/path[:tag][@digest]`` (docker.io/library/ made explicit)."""

    registry: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        raw = text.strip()
        bad = ConfigError(f"not an image reference: {text!r}",
                          resolution="use REGISTRY/PATH:TAG or REGISTRY/PATH@sha256:DIGEST")
        if not raw or any(ch.isspace() for ch in raw):
            raise bad
        name, _, digest = raw.partition("@")
        if digest and not _DIGEST.match(digest):
            raise bad
        tag = None
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, _, tag = name.rpartition(":")
            if not _TAG.match(tag):
                raise bad
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, name
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _HOST.match(registry) or not _PATH.match(path):
            raise bad
        if tag is None and not digest:
            tag = "latest"
        return cls(registry, path, tag, digest or None)

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"

    def with_registry(self, registry: str) -> ImageRef:
        return dataclasses.replace(self, registry=registry)

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def _looks_like_image(token: str) -> bool:
    if not _SCAN.match(token):
        return False
    return "@" in token or ":" in token.rsplit("/", 1)[-1]


def scan_strings(obj: Manifest) -> set[str]:
    """Every string token in the object that is unmistakably an image reference (deep scan).

    ``_example`` keys of Knative ConfigMaps are documentation, never read by Knative: skipped.
    CRD schemas describe fields, they reference no image: skipped.
    """
    if obj.get("kind") == "CustomResourceDefinition":
        return set()
    found = set()
    for path, value in _strings(obj):
        if path and path[-1] == "_example":
            continue
        for token in value.split():
            if _looks_like_image(token):
                found.add(token)
    return found


def structured_images(obj: Manifest) -> set[str]:
    """Images in the places Kubernetes and Knative read them from."""
    found = {i for i in images(obj) if i and i != "None"}
    for c in containers(obj):
        for env in c.get("env") or []:
            if str(env.get("name", "")).upper().endswith("IMAGE") and isinstance(env.get("value"), str) \
                    and env["value"].strip():
                found.add(env["value"].strip())
    if obj.get("kind") == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if key != "_example" and "image" in str(key).lower() and isinstance(value, str) and value.strip() \
                    and not any(ch.isspace() for ch in value.strip()):
                found.add(value.strip())
    return found


def images_in(objs: Iterable[Manifest]) -> list[ImageRef]:
    """The normalised, de-duplicated, sorted images referenced by ``objs``."""
    refs: set[ImageRef] = set()
    for obj in objs:
        for text in structured_images(obj) | scan_strings(obj):
            refs.add(ImageRef.parse(text))
    return sorted(refs, key=str)  # tag or digest may be None: the dataclass order cannot compare them


def unlisted(objs: Iterable[Manifest], listed: Iterable[ImageRef]) -> list[tuple[str, str]]:
    """(object, image) pairs for every image an object references that ``listed`` lacks."""
    have = set(listed)
    missing = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        where = f"{obj.get('kind')} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}" \
                f"{meta.get('name')}"
        for text in sorted(structured_images(obj) | scan_strings(obj)):
            if ImageRef.parse(text) not in have:
                missing.append((where, text))
    return missing


def parse_image_list(text: str, *, source: str) -> list[ImageRef]:
    """An image list file: one reference per line, ``#`` comments and blank lines ignored."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(ImageRef.parse(line))
        except ConfigError as exc:
            raise ConfigError(f"{source}:{number}: {exc.brief}", resolution=exc.resolution) from None
    return out


MAX_IMAGE_LIST_BYTES = 1024 * 1024


def read_image_list(path: Path) -> list[ImageRef]:
    """An image list file, read in bounded memory; binary or oversized files are refused clearly."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_IMAGE_LIST_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the image list {str(path)[:200]}: {exc.strerror}") from None
    if len(data) > MAX_IMAGE_LIST_BYTES:
        raise ConfigError(f"the image list {str(path)[:200]} is larger than {MAX_IMAGE_LIST_BYTES} bytes",
                          resolution="one image reference per line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the image list {str(path)[:200]} is not text",
                          resolution="one image reference per line (UTF-8)") from None
    if "\x00" in text:
        raise ConfigError(f"the image list {str(path)[:200]} is not text", resolution="one image reference per line")
    return parse_image_list(text, source=str(path)[:200])
