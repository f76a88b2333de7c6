"""OCI image layouts: reading index.json, walking descriptors, per-image archives for import."""

from __future__ import annotations

import json
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


def blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def media_type(doc: dict[str, Any], fallback: str = "") -> str:
    return str(doc.get("mediaType") or fallback)


def children(raw: bytes, mtype: str, *, what: str) -> tuple[list[dict[str, Any]], bool]:
    """The descriptors a manifest or index points to, and whether it is an index."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise IntegrityError(f"{what} is not valid JSON") from None
    kind = media_type(doc, mtype)
    if kind in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        return list(doc.get("manifests") or []), True
    if kind in MANIFEST_TYPES or "layers" in doc:
        return [doc["config"], *(doc.get("layers") or [])], False
    raise IntegrityError(f"{what} has an unknown media type {kind!r}")


def reachable(top: dict[str, Any], read: Reader, *, what: str) -> tuple[list[str], list[str]]:
    """(manifest/index digests, every blob digest) reachable from a descriptor (all platforms)."""
    manifests: list[str] = []
    blobs: list[str] = []
    pending = [top]
    while pending:
        desc = pending.pop()
        digest = str(desc["digest"])
        if digest in blobs:
            continue
        blobs.append(digest)
        mtype = str(desc.get("mediaType", ""))
        if mtype in INDEX_TYPES or mtype in MANIFEST_TYPES:
            manifests.append(digest)
            kids, _ = children(read(digest), mtype, what=f"{what}: manifest {digest}")
            pending.extend(kids)
    return manifests, blobs


def platforms(top: dict[str, Any], read: Reader, *, what: str) -> dict[str, str]:
    """``os/arch[/variant]`` -> manifest digest for an index, or the one platform of a single manifest."""
    mtype = str(top.get("mediaType", ""))
    kids, is_index = children(read(str(top["digest"])), mtype, what=what)
    out: dict[str, str] = {}
    if is_index:
        for kid in kids:
            plat = kid.get("platform") or {}
            if plat.get("os") == "unknown" or plat.get("architecture") == "unknown":
                continue  # attestation manifests (buildkit) carry no image
            key = "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)
            out[key] = str(kid["digest"])
        return out
    config = json.loads(read(str(kids[0]["digest"])))
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
