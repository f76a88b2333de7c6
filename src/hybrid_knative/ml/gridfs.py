"""MongoDB GridFS as an opt-in model backend: push with a manifest, and the ClusterStorageContainer.

When NOT to use it (docs/ml.md): MongoDB ≥ 5 needs AVX (x86) / ARMv8.2 (ARM) CPUs, the server is
SSPL-licensed, and every cold start copies the whole model out of the database again. The S3 store
(SeaweedFS) is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.ml import initializer_image
from hybrid_knative.ml.gridfs_initializer import DEFAULT_BUCKET, MANIFEST
from hybrid_knative.ml.models import ModelManifest, Progress, _quiet, build_manifest
from hybrid_knative.ml.serve import GRIDFS_STORAGE_CONTAINER

Manifest = dict[str, Any]

CHUNK_SIZE = 8 * 1024 * 1024  # GridFS's default is 255 KiB: thousands of round trips per GB
MIN_CHUNK_SIZE = 4 * 1024 * 1024
URI_SECRET = "hk-gridfs"  # noqa: S105 - a Secret's name (key `uri`), in each serving namespace
# Until `hybrid-knative model gridfs-image` pins it by digest (ml/initializer_image.py builds
# ml/images/gridfs-initializer/Containerfile: python slim + pymongo + gridfs_initializer.py)
INITIALIZER_IMAGE = initializer_image.destination("localhost:32000")


class UploadBucket(Protocol):
    def upload_from_stream(self, filename: str, source: Any, chunk_size_bytes: int | None = None,
                           metadata: Mapping[str, Any] | None = None) -> Any: ...

    def find(self, filter: Mapping[str, Any]) -> Any: ...

    def delete(self, file_id: Any) -> None: ...


def push(bucket: UploadBucket, folder: Path, name: str, *, chunk_size: int = CHUNK_SIZE,
         progress: Progress = _quiet) -> ModelManifest:
    """Upload ``folder`` as ``name`` (files, then the manifest), then drop older revisions of the same names."""
    if chunk_size < MIN_CHUNK_SIZE:
        raise ConfigError(f"GridFS chunk size {chunk_size} is below {MIN_CHUNK_SIZE} bytes",
                          resolution="use at least 4 MiB: small chunks make every download thousands of queries")
    manifest = build_manifest(folder, name)
    root = folder.resolve()
    new_ids = []
    try:
        for entry in manifest.files:
            progress(f"{entry.path} ({entry.size} bytes)")
            with (root / entry.path).open("rb") as fh:
                new_ids.append(bucket.upload_from_stream(f"{name}/{entry.path}", fh, chunk_size_bytes=chunk_size,
                                                         metadata={"sha256": entry.sha256, "model": name}))
        new_ids.append(bucket.upload_from_stream(f"{name}/{MANIFEST}", manifest.to_json(),
                                                 chunk_size_bytes=chunk_size,
                                                 metadata={"sha256": manifest.digest, "model": name}))
        for old in bucket.find({"metadata.model": name}):
            if old._id not in new_ids:
                bucket.delete(old._id)
    except (OSError, ConfigError):
        raise
    except Exception as exc:
        raise PermanentError(f"GridFS push of {name} failed: {type(exc).__name__}: {exc}",
                             resolution="check the MongoDB URI and that the server is reachable") from None
    return manifest


def storage_container(*, image: str = INITIALIZER_IMAGE, labels: Mapping[str, str] | None = None) -> Manifest:
    """The ClusterStorageContainer that makes KServe accept ``gridfs://`` URIs."""
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterStorageContainer",
        "metadata": {"name": GRIDFS_STORAGE_CONTAINER, "labels": dict(labels or {})},
        "spec": {
            "container": {
                "name": "storage-initializer",  # KServe requires this name
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "MONGODB_URI",
                         "valueFrom": {"secretKeyRef": {"name": URI_SECRET, "key": "uri"}}}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]}},
            },
            "supportedUriFormats": [{"prefix": "gridfs://"}],
            "workloadType": "initContainer",
        },
    }


def uri(database: str, name: str, bucket: str = DEFAULT_BUCKET) -> str:
    suffix = "" if bucket == DEFAULT_BUCKET else f"?bucket={bucket}"
    return f"gridfs://{database}/{name}{suffix}"
