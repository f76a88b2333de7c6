"""Importing a verified bundle's images: into every node (``microk8s images import``), into this node's
containerd (``ctr images import --all-platforms``) — both in ONE call over ONE archive streamed from the
unpacked layout — or into a registry mirror (skopeo push per image + containerd ``hosts.toml`` files).
Resumable: a state file records the images once they are in; re-runs skip them."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from hybrid_knative.airgap import oci
from hybrid_knative.airgap.bundle import OCI_DIR, BundleImage, Unpacked
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import CommandError, ConfigError, IntegrityError
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
    ``node``: stdin of ``<command> images import --all-platforms -`` (ctr on this node); ``mirror``: a registry."""

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
    """Import every image of a verified bundle not imported before. Into containerd (``cluster``/``node``):
    ONE import of ONE archive of all of them, streamed from the unpacked layout into the importer's stdin
    (each blob once; every image under its name, at its digest, all platforms). Into a registry: one
    ``skopeo copy`` per image, each recorded once pushed."""
    state = _state_path(state_dir, unpacked, target)
    tags = check_tags(unpacked, state_dir)
    done = _load_done(state)
    images = unpacked.manifest.images
    pending = [image for image in images if done.get(image.name) != image.digest]
    skipped = [image.name for image in images if done.get(image.name) == image.digest]
    how = {"cluster": "every node (microk8s images import)", "node": "this node's containerd",
           "mirror": f"the registry {target.mirror}"}[target.mode]

    def mark(batch: Sequence[BundleImage]) -> None:
        for image in batch:
            done[image.name] = image.digest
        atomic_write(state, json.dumps({"done": done}, indent=1, sort_keys=True))
        if any(tags.get(image.name) != image.digest for image in batch):
            tags.update({image.name: image.digest for image in batch})
            atomic_write(_tags_path(state_dir), json.dumps({"done": tags}, indent=1, sort_keys=True))

    with status.step(f"Import {len(images)} images into {how}"):
        for name in skipped:
            status.detail(f"already imported {name}")
        if target.mode == "mirror":
            for index, image in enumerate(pending, start=1):
                status.note(f"{index}/{len(pending)}: {image.name}")
                _push_one(unpacked, image, target, runner)
                mark([image])
                status.detail(f"imported {image.name}")
        elif pending:
            _import_all(unpacked, pending, target, runner, status)
            mark(pending)
            for image in pending:
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
    return ImportReport(tuple(image.name for image in pending), tuple(skipped), tuple(hosts))


def _push_one(unpacked: Unpacked, image: BundleImage, target: Target, runner: Runner) -> None:
    ref = ImageRef.parse(image.name)
    tag = ref.digest.replace(":", "-") if ref.digest else ref.tag
    dest = f"docker://{target.mirror}/{ref.path}:{tag}"
    Skopeo(runner).copy(f"oci:{unpacked.layout}:{image.ref_name}", dest, dest_tls_verify=False)


def import_command(target: Target) -> list[str]:
    """The command that reads one OCI archive on its stdin and imports every image in it, all platforms."""
    if target.mode == "cluster":
        return [*target.command, "import"]
    return [*target.command, "images", "import", "--all-platforms", "-"]


def _import_all(unpacked: Unpacked, images: Sequence[BundleImage], target: Target, runner: Runner,
                status: Status) -> None:
    entries = [(unpacked.top(image), image.name) for image in images]
    blobs = sorted({digest for image in images for digest in unpacked.blobs_of(image)})
    size = 0
    for digest in blobs:  # the unpacked copy was verified when it was made; check it is still whole
        path = unpacked.layout / oci.blob_path(digest)
        entry = unpacked.manifest.files.get(f"{OCI_DIR}/{oci.blob_path(digest)}")
        if entry is None or not path.is_file() or path.stat().st_size != entry.size:
            raise _damaged(unpacked, f"blob {digest} is missing or has another size")
        size += entry.size
    status.note(f"{len(images)} images, {len(blobs)} blobs ({size / 1e6:.1f} MB) in one archive")
    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def feed() -> None:
        try:
            oci.stream_archive(write_fd, entries, blobs, unpacked.layout)
        except BrokenPipeError:
            pass  # the importer stopped reading: its own error is what matters
        except IntegrityError as exc:
            failed.append(_damaged(unpacked, exc.brief))
        except OSError as exc:
            failed.append(_damaged(unpacked, str(exc)[:300]))
        except BaseException as exc:  # re-raised below, in the caller's thread
            failed.append(exc)
        finally:
            if failed:
                oci.cut_short(write_fd)  # the importer must see a truncated archive, never a shorter whole one
            os.close(write_fd)

    feeder = threading.Thread(target=feed, name="bundle-archive", daemon=True)
    with os.fdopen(read_fd, "rb") as reader:
        feeder.start()
        try:
            runner.run(import_command(target), input=reader, timeout=3600)
        except CommandError:
            if not failed:
                raise
        finally:
            reader.close()  # a feeder still blocked on a full pipe gets EPIPE and ends
            feeder.join(timeout=60)
    if failed:
        raise failed[0]


def _damaged(unpacked: Unpacked, why: str) -> IntegrityError:
    return IntegrityError(f"the unpacked copy of the bundle is damaged: {why}", details=str(unpacked.root),
                          resolution=f"remove {unpacked.root} and run the import again (it unpacks and verifies the "
                          "bundle again); nothing was imported")
