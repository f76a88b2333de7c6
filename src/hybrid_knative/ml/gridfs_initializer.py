"""Storage initializer for ``gridfs://DATABASE/MODEL`` (KServe ClusterStorageContainer; stdlib + pymongo only).

KServe runs it as the ``storage-initializer`` init container with the arguments ``<uri> /mnt/models``.
The MongoDB URI comes from the environment (``MONGODB_URI``, from a Secret), never from the arguments
(they show up in ``kubectl describe``). The model is the manifest ``MODEL/hk-manifest.json`` in the
GridFS bucket (default ``models``; ``?bucket=NAME`` to change) and the files it lists, each stored as
``MODEL/<path>``. Every file is read in chunk-sized pieces (≥ 4 MiB), hashed while it is written to a
temporary name, and renamed only when its sha256 matches; any mismatch fails the pod (exit 1) with
nothing half-written under the final names.

This file is copied into the initializer image as is: keep it free of hybrid_knative imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

MANIFEST = "hk-manifest.json"
MANIFEST_FORMAT = "hybrid-knative/model-manifest/v1"
MIN_READ = 4 * 1024 * 1024
DEFAULT_BUCKET = "models"


class InitializerError(Exception):
    """A clear, one-line reason to fail the init container."""


class Stream(Protocol):
    length: int
    chunk_size: int

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Bucket(Protocol):
    def open_download_stream_by_name(self, filename: str, revision: int = -1) -> Stream: ...


def parse_uri(uri: str) -> tuple[str, str, str]:
    """``gridfs://db/model[?bucket=b]`` → (database, model, bucket)."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme != "gridfs" or not parsed.netloc:
        raise InitializerError(f"not a gridfs:// URI: {uri!r}")
    model = parsed.path.strip("/")
    if not model or "/" in model:
        raise InitializerError(f"{uri!r}: expected gridfs://DATABASE/MODEL")
    bucket = urllib.parse.parse_qs(parsed.query).get("bucket", [DEFAULT_BUCKET])[0]
    return parsed.netloc, model, bucket


def _read_all(stream: Stream) -> bytes:
    try:
        return stream.read()
    finally:
        stream.close()


def _safe_target(out_dir: Path, rel: str) -> Path:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not rel:
        raise InitializerError(f"manifest entry {rel!r} points outside the model folder")
    return out_dir.joinpath(*path.parts)


def load_manifest(bucket: Bucket, model: str) -> list[dict[str, Any]]:
    try:
        raw = _read_all(bucket.open_download_stream_by_name(f"{model}/{MANIFEST}"))
    except Exception as exc:  # gridfs.errors.NoFile and connection errors alike
        raise InitializerError(f"model {model!r} has no manifest in GridFS ({type(exc).__name__}: {exc})") from None
    try:
        doc = json.loads(raw)
        if doc.get("format") != MANIFEST_FORMAT or doc.get("name") != model:
            raise ValueError("wrong format or name")
        files: list[dict[str, Any]] = [{"path": str(f["path"]), "size": int(f["size"]), "sha256": str(f["sha256"])}
                                       for f in doc["files"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InitializerError(f"the manifest of {model!r} is unreadable: {exc}") from None
    lines = "".join(f"{f['sha256']}  {f['path']}\n" for f in sorted(files, key=lambda f: str(f["path"])))
    if hashlib.sha256(lines.encode()).hexdigest() != doc.get("digest"):
        raise InitializerError(f"the manifest of {model!r} does not match its own digest")
    return files


def download(bucket: Bucket, model: str, out_dir: Path) -> int:
    """Copy and verify every file of ``model`` into ``out_dir``; returns the bytes written."""
    files = load_manifest(bucket, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for entry in files:
        target = _safe_target(out_dir, entry["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            stream = bucket.open_download_stream_by_name(f"{model}/{entry['path']}")
        except Exception as exc:
            raise InitializerError(f"{entry['path']}: missing from GridFS ({type(exc).__name__})") from None
        digest = hashlib.sha256()
        size = 0
        piece = max(MIN_READ, int(getattr(stream, "chunk_size", 0) or 0))
        try:
            with partial.open("wb") as fh:
                while True:
                    data = stream.read(piece)
                    if not data:
                        break
                    digest.update(data)
                    fh.write(data)
                    size += len(data)
        finally:
            stream.close()
        if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
            partial.unlink(missing_ok=True)
            raise InitializerError(f"{entry['path']}: sha256/size mismatch (got {size} bytes, {digest.hexdigest()}; "
                                   f"manifest {entry['size']} bytes, {entry['sha256']}): refusing to serve")
        os.replace(partial, target)
        total += size
        print(f"verified {entry['path']} ({size} bytes)", flush=True)
    return total


def open_bucket(database: str, bucket: str) -> Bucket:  # pragma: no cover - needs a MongoDB server
    import gridfs
    import pymongo

    uri = os.environ.get("MONGODB_URI", "")
    if not uri:
        raise InitializerError("MONGODB_URI is not set (it comes from the Secret named in the storage container)")
    # 30 s to find a server unless the URI says otherwise (e.g. ?serverSelectionTimeoutMS=5000)
    options: dict[str, Any] = {} if "serverselectiontimeoutms" in uri.lower() else {"serverSelectionTimeoutMS": 30000}
    client: Any = pymongo.MongoClient(uri, **options)
    result: Bucket = gridfs.GridFSBucket(client[database], bucket_name=bucket)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: gridfs_initializer gridfs://DATABASE/MODEL[?bucket=NAME] OUT_DIR", file=sys.stderr)
        return 2
    try:
        database, model, bucket_name = parse_uri(args[0])
        written = download(open_bucket(database, bucket_name), model, Path(args[1]))
    except InitializerError as exc:
        print(f"gridfs initializer: {exc}", file=sys.stderr)
        return 1
    print(f"gridfs initializer: {model} ready in {args[1]} ({written} bytes)", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
