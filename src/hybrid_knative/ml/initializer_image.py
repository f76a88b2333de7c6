"""The gridfs:// storage initializer's image: built with the functions' image path (buildah, vfs storage,
chroot isolation), pushed to the cluster registry, and referenced BY DIGEST in the ClusterStorageContainer.

The build context is ``ml/images/gridfs-initializer/Containerfile``, ``gridfs_initializer.py`` (the one-file
module, stdlib + pymongo) and a ``wheels/`` folder with pymongo's wheels: the Containerfile installs with
``--no-index``, so nothing is fetched during the build (offline: pass a wheelhouse made on a connected
machine with ``pip download --only-binary=:all: -d DIR "pymongo>=4.6,<5"``). Same inputs → same digest
(``--timestamp 0``), so a rebuild changes nothing in the cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hybrid_knative.errors import CommandError, ConfigError
from hybrid_knative.system.buildah import Buildah
from hybrid_knative.system.runner import Runner

HERE = Path(__file__).resolve().parent
CONTAINERFILE = HERE / "images" / "gridfs-initializer" / "Containerfile"
MODULE = HERE / "gridfs_initializer.py"
REPOSITORY = "hybrid-knative/gridfs-initializer"
VERSION = "0.2.0"  # bump with a change of the Containerfile or the module (the tag; the digest is the pin)
LOCAL_TAG = f"localhost/{REPOSITORY}:build"
PYMONGO = "pymongo>=4.6,<5"
REQUIRED_WHEELS = ("pymongo", "dnspython")


def missing_wheels(folder: Path) -> list[str]:
    names = {p.name.split("-", 1)[0].lower() for p in folder.glob("*.whl")}
    return [w for w in REQUIRED_WHEELS if w not in names]


def download_wheels(dest: Path, runner: Runner, *, python: str = "python3") -> None:
    """pymongo and its dependencies as wheels (needs the package index: on a connected machine)."""
    try:
        runner.run([python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
                    "-d", str(dest), PYMONGO], timeout=900)
    except CommandError as exc:
        raise ConfigError("cannot download pymongo's wheels for the gridfs initializer image",
                          details="\n".join((exc.stderr or exc.stdout).strip().splitlines()[-6:]),
                          resolution="offline, pass --wheelhouse DIR made on a connected machine with "
                          f"`pip download --only-binary=:all: -d DIR '{PYMONGO}'`") from None


def build_context(dest: Path, runner: Runner, *, wheelhouse: Path | None = None) -> Path:
    """The build context in ``dest`` (replaced): Containerfile, the module, wheels/."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(CONTAINERFILE, dest / "Containerfile")
    shutil.copyfile(MODULE, dest / "gridfs_initializer.py")
    wheels = dest / "wheels"
    wheels.mkdir()
    if wheelhouse is not None:
        if not wheelhouse.is_dir():
            raise ConfigError(f"wheelhouse {wheelhouse} is not a folder", resolution="pass the folder of .whl files")
        for whl in sorted(wheelhouse.glob("*.whl")):
            shutil.copyfile(whl, wheels / whl.name)
    else:
        download_wheels(wheels, runner)
    missing = missing_wheels(wheels)
    if missing:
        raise ConfigError(f"the wheelhouse lacks {', '.join(missing)} for the gridfs initializer image",
                          resolution=f"make it with `pip download --only-binary=:all: -d DIR '{PYMONGO}'`")
    return dest


def destination(registry: str) -> str:
    registry = registry.strip().rstrip("/")
    if not registry or "://" in registry or " " in registry:
        raise ConfigError(f"not a registry: {registry!r}", resolution="use HOST:PORT, e.g. localhost:32000")
    return f"{registry}/{REPOSITORY}:{VERSION}"


def build_and_push(buildah: Buildah, context: Path, registry: str, *, pull_tls_verify: bool = True) -> str:
    """Build the context, push it to ``registry``; the image reference BY DIGEST (``REGISTRY/REPO@sha256:…``)."""
    target = destination(registry)
    buildah.bud(context, context / "Containerfile", LOCAL_TAG, pull_tls_verify=pull_tls_verify)
    digest = buildah.push(LOCAL_TAG, target)
    return f"{target.rsplit(':', 1)[0]}@{digest}"


def is_pinned(image: str) -> bool:
    """An initializer image referenced by digest (what `model gridfs-image` writes)."""
    name, _, digest = image.partition("@")
    return name.endswith("/" + REPOSITORY) and digest.startswith("sha256:") and len(digest) == 71
