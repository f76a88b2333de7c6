"""OCI image layouts: reading index.json, walking descriptors, one archive of many images for import."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

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


def archive_index(entries: Iterable[tuple[dict[str, Any], str]]) -> bytes:
    """The ``index.json`` of an import archive: one entry per (top descriptor, containerd image name)."""
    manifests = []
    for top, name in entries:
        entry = dict(top)
        entry["annotations"] = {**(top.get("annotations") or {}), CONTAINERD_NAME: name}
        manifests.append(entry)
    return json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()


def stream_archive(fd: int, entries: Sequence[tuple[dict[str, Any], str]], blobs: Iterable[str],
                   layout: Path) -> int:
    """Write ONE OCI archive (tar) holding every image of ``entries`` (top descriptor, containerd image
    name) and each blob once, to the file or pipe ``fd`` — what ``ctr images import`` reads, from a
    file or its stdin. Returns the bytes written.

    Every blob is checked against its digest on the way: the last chunk of a blob is written only once
    its sha256 matched, so a blob changed on disk since it was verified raises IntegrityError with the
    archive cut short — the importer reads a truncated archive and creates no image."""
    written = _write_all(fd, _header("oci-layout", len(_LAYOUT)) + _padded(_LAYOUT))
    index = archive_index(entries)
    written += _write_all(fd, _header("index.json", len(index)) + _padded(index))
    for digest in sorted(set(blobs)):
        name = blob_path(digest)
        with (layout / name).open("rb") as blob:
            size = os.fstat(blob.fileno()).st_size
            written += _send_checked(fd, name, blob, size, digest)
            written += _write_all(fd, bytes(-size % tarfile.BLOCKSIZE))
    return written + _write_all(fd, bytes(2 * tarfile.BLOCKSIZE))


def cut_short(fd: int) -> None:
    """Make an archive being streamed unreadable as a whole: a tar reader takes an archive that ends
    between two entries as complete, so a writer that fails there adds a partial block first."""
    with contextlib.suppress(OSError):
        os.write(fd, b"\x00" * 7)


_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_CHUNK = 1 << 20


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def _write_all(fd: int, data: bytes | memoryview) -> int:
    view = memoryview(data)
    total = len(view)
    while view:
        view = view[os.write(fd, view):]
    return total


def _send_checked(fd: int, name: str, src: IO[bytes], size: int, digest: str) -> int:
    """The tar header and ``size`` bytes of ``src``; the last chunk is held back until the sha256 matched
    (a blob of one chunk is read whole and checked before its header is written)."""
    hasher = hashlib.sha256()
    held = src.read(min(_CHUNK, size))
    hasher.update(held)
    done = len(held)
    written = 0
    if done == size:  # one chunk: check before anything of it is written
        _check(hasher, digest, done, size)
    written += _write_all(fd, _header(name, size))
    while done < size:
        chunk = src.read(min(_CHUNK, size - done))
        if not chunk:
            break
        hasher.update(chunk)
        done += len(chunk)
        written += _write_all(fd, held)
        held = chunk
    _check(hasher, digest, done, size)
    return written + _write_all(fd, held)


def _check(hasher: Any, digest: str, done: int, size: int) -> None:
    if done != size or f"sha256:{hasher.hexdigest()}" != digest:
        raise IntegrityError(f"blob {digest} changed on disk since the bundle was verified",
                             details=f"read {done} of {size} bytes, sha256:{hasher.hexdigest()}")
