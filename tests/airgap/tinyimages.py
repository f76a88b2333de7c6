"""Tiny multi-arch OCI images written offline with the stdlib (deterministic: gzip/tar mtime 0)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as fh:
        fh.write(raw.getvalue())
    return gz.getvalue(), diff_id


def write_image(layout: Path, ref: str, *, arches: tuple[str, ...] = ("amd64", "arm64"), payload: str = "",
                shared: bytes = b"shared base layer\n" * 64) -> str:
    """Add a multi-arch image to an OCI layout under ``ref``; return the index digest.

    Every image shares one base layer (``shared``) so that de-duplication is observable.
    """
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    base, base_diff = _layer({"base.txt": shared})
    base_desc = {"mediaType": OCI_LAYER, **_blob(layout, base)}
    manifests = []
    for arch in arches:
        own, own_diff = _layer({"id.txt": f"{ref} {arch} {payload}\n".encode()})
        own_desc = {"mediaType": OCI_LAYER, **_blob(layout, own)}
        config = {"architecture": arch, "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [base_diff, own_diff]}}
        config_desc = {"mediaType": OCI_CONFIG, **_blob(layout, json.dumps(config, sort_keys=True).encode())}
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                    "layers": [base_desc, own_desc]}
        desc = {"mediaType": OCI_MANIFEST, **_blob(layout, json.dumps(manifest, sort_keys=True).encode()),
                "platform": {"architecture": arch, "os": "linux"}}
        manifests.append(desc)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    index_desc = {"mediaType": OCI_INDEX, **_blob(layout, json.dumps(index, sort_keys=True).encode())}
    top_path = layout / "index.json"
    top = json.loads(top_path.read_text()) if top_path.exists() else {"schemaVersion": 2, "manifests": []}
    top["manifests"] = [m for m in top["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref]
    top["manifests"].append({**index_desc, "annotations": {"org.opencontainers.image.ref.name": ref}})
    top_path.write_text(json.dumps(top))
    return str(index_desc["digest"])
