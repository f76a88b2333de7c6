"""The gridfs:// storage initializer's image: built with the functions' image path (buildah, vfs storage,
chroot isolation), pushed to the cluster registry, and referenced BY DIGEST in the ClusterStorageContainer.

The build context is ``ml/images/gridfs-initializer/Containerfile``, ``gridfs_initializer.py`` (the one-file
module, stdlib + pymongo) and a ``wheels/`` folder with pymongo's wheels: the Containerfile installs with
``--no-index``, so nothing is fetched during the build: the wheels are for the IMAGE's Python (the
Containerfile's ``FROM python:X.Y``) and this machine's architecture, not the host's Python (offline: pass a
wheelhouse made on a connected machine with :func:`download_wheels`, or the ``pip download`` line of
:func:`download_hint`; one that does not fit is refused before the build). Same inputs → same digest
(``--timestamp 0``), so a rebuild changes nothing in the cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hybrid_knative.errors import CommandError, ConfigError
from hybrid_knative.system import wheels
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
    names = {wheels.dist_name(p.name) for p in folder.glob("*.whl")}
    return [w for w in REQUIRED_WHEELS if w not in names]


def image_python() -> str:
    """The Python version (``3.12``) of the initializer image's base, from the Containerfile's FROM line."""
    return wheels.image_python(CONTAINERFILE, what="the gridfs initializer image")


def download_hint(python_version: str | None = None, arch: str | None = None) -> str:
    """The ``pip download`` line (``DIR`` for the folder) that makes a fitting wheelhouse on a connected machine."""
    return wheels.download_hint([PYMONGO], python_version or image_python(), arch or wheels.machine_arch())


def download_wheels(dest: Path, runner: Runner, *, python: str = "python3", python_version: str | None = None,
                    arch: str | None = None, pip_args: tuple[str, ...] = ()) -> None:
    """pymongo and its dependencies as wheels for the image's Python (default the Containerfile's) and ``arch``
    (default this machine's), whatever Python runs here (needs the package index: on a connected machine)."""
    version, arch = python_version or image_python(), arch or wheels.machine_arch()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        runner.run(wheels.download_command(dest, [PYMONGO], version, arch, python=python,
                                           extra=["--quiet", *pip_args]), timeout=900)
    except CommandError as exc:
        raise ConfigError(f"cannot download pymongo's wheels (for Python {version} on {arch}) for the gridfs "
                          "initializer image",
                          details="\n".join((exc.stderr or exc.stdout).strip().splitlines()[-6:]),
                          resolution="offline, pass --wheelhouse DIR made on a connected machine with "
                          f"`{download_hint(version, arch)}`") from None


def build_context(dest: Path, runner: Runner, *, wheelhouse: Path | None = None,
                  python_version: str | None = None, arch: str | None = None) -> Path:
    """The build context in ``dest`` (replaced): Containerfile, the module, wheels/ — checked to hold pymongo's
    wheels for the image's Python (default the Containerfile's) and ``arch`` (default this machine's)."""
    version, arch = python_version or image_python(), arch or wheels.machine_arch()
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise ConfigError(f"wheelhouse {wheelhouse} is not a folder", resolution="pass the folder of .whl files")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(CONTAINERFILE, dest / "Containerfile")
    shutil.copyfile(MODULE, dest / "gridfs_initializer.py")
    wheel_dir = dest / "wheels"
    wheel_dir.mkdir()
    if wheelhouse is not None:
        for whl in sorted(wheelhouse.glob("*.whl")):
            shutil.copyfile(whl, wheel_dir / whl.name)
    else:
        download_wheels(wheel_dir, runner, python_version=version, arch=arch)
    missing = missing_wheels(wheel_dir)
    if missing:
        raise ConfigError(f"the wheelhouse lacks {', '.join(missing)} for the gridfs initializer image",
                          resolution=f"make it with `{download_hint(version, arch)}`")
    # pymongo is a binary wheel: one made by a host with another Python (cp311 for a 3.12 image) fails in the build
    unfit = [d for d in wheels.unfit_wheels(wheel_dir, version, arch) if d in REQUIRED_WHEELS]
    if unfit:
        raise ConfigError(f"the wheelhouse's {', '.join(unfit)} wheels do not install on the gridfs initializer "
                          f"image's Python {version} ({arch})",
                          resolution="make a fitting wheelhouse on a connected machine with "
                          f"`{download_hint(version, arch)}` (or leave out --wheelhouse to download them)")
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
