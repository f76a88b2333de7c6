"""Importing a verified bundle's images: into every node (``microk8s images import``), into this node's
containerd (``ctr images import --all-platforms``), or into a registry mirror (skopeo push + containerd
``hosts.toml`` files). Resumable: a state file records each image once it is in; re-runs skip it."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hybrid_knative.airgap import oci
from hybrid_knative.airgap.bundle import BundleImage, Unpacked
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import ConfigError, IntegrityError
from hybrid_knative.manifests.images import ImageRef
from hybrid_knative.progress import Status
from hybrid_knative.system import microk8s
from hybrid_knative.system.files import atomic_write
from hybrid_knative.system.registry import Skopeo
from hybrid_knative.system.runner import Runner

MIRRORED_REGISTRIES = {  # registry -> its real server (containerd's `server`, used when the mirror lacks an image)
    "docker.io": "https://registry-1.docker.io",
    "gcr.io": "https://gcr.io",
    "ghcr.io": "https://ghcr.io",
    "quay.io": "https://quay.io",
    "registry.k8s.io": "https://registry.k8s.io",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """Where images go. ``cluster``: stdin of ``<command> import`` (microk8s images, every node);
    ``node``: ``<command> images import --all-platforms FILE`` (ctr on this node); ``mirror``: a registry."""

    mode: str
    command: tuple[str, ...] = ()
    mirror: str | None = None
    certs_dir: Path | None = None

    @classmethod
    def cluster(cls, snap: SnapPaths) -> Target:
        # hybrid-knative/host: MicroK8s's public command, not $SNAP/microk8s-images.wrapper (needs its env)
        return cls("cluster", (microk8s.command(), "images"))

    @classmethod
    def node(cls, snap: SnapPaths, ctr: Sequence[str] | None = None) -> Target:
        return cls("node", tuple(ctr) if ctr else (microk8s.command(), "ctr"))

    @classmethod
    def registry(cls, mirror: str, snap: SnapPaths, certs_dir: Path | None = None) -> Target:
        if not mirror or "/" in mirror or not all(part for part in mirror.split(":")):
            raise ConfigError(f"not a registry host: {mirror!r}", resolution="use HOST:PORT, e.g. localhost:32000")
        return cls("mirror", mirror=mirror, certs_dir=certs_dir or snap.snap_data / "args" / "certs.d")


@dataclasses.dataclass(frozen=True)
class ImportReport:
    imported: tuple[str, ...]
    skipped: tuple[str, ...]
    hosts_files: tuple[Path, ...] = ()


def hosts_toml(registry: str, mirror: str) -> str:
    """containerd's mirror configuration for ``registry`` (certs.d/<registry>/hosts.toml)."""
    return (f'server = "{MIRRORED_REGISTRIES[registry]}"\n\n'
            f'[host."http://{mirror}"]\n'
            f'  capabilities = ["pull", "resolve"]\n')


def _state_path(state_dir: Path, unpacked: Unpacked, target: Target) -> Path:
    where = target.mirror.replace(":", "_") if target.mirror else target.mode
    return state_dir / "airgap" / f"import-{unpacked.manifest.bundle_id[:16]}-{where}.json"


def _load_done(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text())
        return {str(k): str(v) for k, v in doc.get("done", {}).items()}
    except (OSError, ValueError, AttributeError, RecursionError):
        return {}


def _tags_path(state_dir: Path) -> Path:
    return state_dir / "airgap" / "tags.json"


def check_tags(unpacked: Unpacked, state_dir: Path) -> dict[str, str]:
    """A tag this site imported before must still name the same digest: a bundle whose tag now points
    elsewhere (a swapped image under a fixed tag) is refused before anything is imported."""
    path = _tags_path(state_dir)
    known = _load_done(path)
    for image in unpacked.manifest.images:
        before = known.get(image.name)
        if before is not None and before != image.digest:
            raise IntegrityError(f"image {image.name} is not the image this site imported under that tag",
                                 details=f"imported before: {before}\nthis bundle:     {image.digest}",
                                 resolution="a fixed tag must never change: get the image by its recorded digest, "
                                 f"or, if the new digest is intended, remove its line from {path}")
    return known


def import_images(unpacked: Unpacked, target: Target, *, runner: Runner, status: Status,
                  state_dir: Path) -> ImportReport:
    state = _state_path(state_dir, unpacked, target)
    tags = check_tags(unpacked, state_dir)
    done = _load_done(state)
    images = unpacked.manifest.images
    imported: list[str] = []
    skipped: list[str] = []
    how = {"cluster": "every node (microk8s images import)", "node": "this node's containerd",
           "mirror": f"the registry {target.mirror}"}[target.mode]
    with status.step(f"Import {len(images)} images into {how}"):
        for index, image in enumerate(images, start=1):
            if done.get(image.name) == image.digest:
                skipped.append(image.name)
                status.detail(f"already imported {image.name}")
                continue
            status.note(f"{index}/{len(images)}: {image.name}")
            _import_one(unpacked, image, target, runner)
            done[image.name] = image.digest
            atomic_write(state, json.dumps({"done": done}, indent=1, sort_keys=True))
            if tags.get(image.name) != image.digest:
                tags[image.name] = image.digest
                atomic_write(_tags_path(state_dir), json.dumps({"done": tags}, indent=1, sort_keys=True))
            imported.append(image.name)
            status.detail(f"imported {image.name}")
    hosts: list[Path] = []
    if target.mode == "mirror":
        assert target.certs_dir is not None and target.mirror is not None
        with status.step(f"Point containerd at {target.mirror} for {', '.join(MIRRORED_REGISTRIES)}"):
            for registry in MIRRORED_REGISTRIES:
                path = target.certs_dir / registry / "hosts.toml"
                text = hosts_toml(registry, target.mirror)
                if not path.is_file() or path.read_text() != text:
                    atomic_write(path, text)
                hosts.append(path)
    return ImportReport(tuple(imported), tuple(skipped), tuple(hosts))


def _import_one(unpacked: Unpacked, image: BundleImage, target: Target, runner: Runner) -> None:
    if target.mode == "mirror":
        ref = ImageRef.parse(image.name)
        tag = ref.digest.replace(":", "-") if ref.digest else ref.tag
        dest = f"docker://{target.mirror}/{ref.path}:{tag}"
        Skopeo(runner).copy(f"oci:{unpacked.layout}:{image.ref_name}", dest, dest_tls_verify=False)
        return
    with tempfile.TemporaryDirectory(prefix=".import-", dir=unpacked.root.parent) as tmp:
        archive = Path(tmp) / "image.tar"
        oci.write_archive(archive, unpacked.top(image), image.name, unpacked.blobs_of(image), unpacked.layout)
        if target.mode == "cluster":
            runner.run([*target.command, "import"], input=archive.read_bytes(), timeout=3600)
        else:
            runner.run([*target.command, "images", "import", "--all-platforms", archive], timeout=3600)
