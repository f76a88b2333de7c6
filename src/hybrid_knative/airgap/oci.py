"""OCI image layouts: reading index.json, walking descriptors, per-image archives for import."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hybrid_knative.errors import IntegrityError

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

Reader = Callable[[str], bytes]  # digest -> blob bytes
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_BLOBS = 100_000  # blobs reachable from one image (real images: tens)


def descriptor(value: Any, *, what: str) -> dict[str, Any]:
    """An OCI descriptor: an object with a ``sha256:<hex>`` digest (anything else is refused, naming it)."""
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str) or not DIGEST.fullmatch(value["digest"]):
        raise IntegrityError(f"{what}: a descriptor is malformed (expected an object with a sha256 digest)")
    if "mediaType" in value and not isinstance(value["mediaType"], str):
        raise IntegrityError(f"{what}: descriptor {value['digest']} has a malformed mediaType")
    return value


def blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def media_type(doc: dict[str, Any], fallback: str = "") -> str:
    return str(doc.get("mediaType") or fallback)


def children(raw: bytes, mtype: str, *, what: str) -> tuple[list[dict[str, Any]], bool]:
    """The descriptors a manifest or index points to, and whether it is an index."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise IntegrityError(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    kind = media_type(doc, mtype)
    if kind in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        kids = doc.get("manifests") or []
        if not isinstance(kids, list):
            raise IntegrityError(f"{what}: manifests is not a list")
        return [descriptor(k, what=what) for k in kids], True
    if kind in MANIFEST_TYPES or "layers" in doc:
        layers = doc.get("layers") or []
        if not isinstance(layers, list):
            raise IntegrityError(f"{what}: layers is not a list")
        return [descriptor(k, what=what) for k in (doc.get("config"), *layers)], False
    raise IntegrityError(f"{what} has an unknown media type {str(kind)[:100]!r}")


def reachable(top: dict[str, Any], read: Reader, *, what: str) -> tuple[list[str], list[str]]:
    """(manifest/index digests, every blob digest) reachable from a descriptor (all platforms)."""
    manifests: list[str] = []
    blobs: list[str] = []
    pending = [descriptor(top, what=what)]
    seen: set[str] = set()
    while pending:
        desc = pending.pop()
        digest = str(desc["digest"])
        if digest in seen:
            continue
        if len(seen) >= MAX_BLOBS:
            raise IntegrityError(f"{what} references more than {MAX_BLOBS} blobs")
        seen.add(digest)
        blobs.append(digest)
        mtype = str(desc.get("mediaType", ""))
        if mtype in INDEX_TYPES or mtype in MANIFEST_TYPES:
            manifests.append(digest)
            kids, _ = children(read(digest), mtype, what=f"{what}: manifest {digest}")
            pending.extend(kids)
    return manifests, blobs


def platforms(top: dict[str, Any], read: Reader, *, what: str) -> dict[str, str]:
    """``os/arch[/variant]`` -> manifest digest for an index, or the one platform of a single manifest."""
    mtype = str(descriptor(top, what=what).get("mediaType", ""))
    kids, is_index = children(read(str(top["digest"])), mtype, what=what)
    out: dict[str, str] = {}
    if is_index:
        for kid in kids:
            plat = kid.get("platform") or {}
            if not isinstance(plat, dict) or not all(isinstance(plat.get(k, ""), str)
                                                     for k in ("os", "architecture", "variant")):
                raise IntegrityError(f"{what}: manifest {kid['digest']} has a malformed platform")
            if plat.get("os") == "unknown" or plat.get("architecture") == "unknown":
                continue  # attestation manifests (buildkit) carry no image
            key = "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)
            out[key] = str(kid["digest"])
        return out
    try:
        config = json.loads(read(str(kids[0]["digest"])))
    except (ValueError, RecursionError):
        raise IntegrityError(f"{what}: its config is not valid JSON") from None
    if not isinstance(config, dict) or not all(isinstance(config.get(k, ""), str)
                                               for k in ("os", "architecture", "variant")):
        raise IntegrityError(f"{what}: its config is malformed")
    key = "/".join(p for p in (config.get("os"), config.get("architecture"), config.get("variant")) if p)
    return {key: str(top["digest"])}


def arch_of(platform: str) -> str:
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def write_archive(dest: Path, top: dict[str, Any], name: str, blobs: Iterable[str], layout: Path) -> None:
    """An OCI archive (tar) holding one image named ``name`` with every blob it needs."""
    entry = dict(top)
    entry["annotations"] = {**(top.get("annotations") or {}), CONTAINERD_NAME: name}
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tar, "index.json", index)
        for digest in sorted(set(blobs)):
            tar.add(layout / blob_path(digest), arcname=blob_path(digest), recursive=False, filter=_normalise)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))
