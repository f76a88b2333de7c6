"""``bundle create --with functions`` / ``bundle import``: what offline function builds (and the ROS 2 bridge's
image) need, carried in an air-gap bundle without changing the bundle format.

* the templates' base images (dev.offline.base_images(): ``docker.io/library/python:3.12-slim`` …) as bundle
  images; at import they go to the cluster registry under ``mirror_path()`` (``localhost:32000/library/python``),
  where ``deploy --offline`` looks for docker.io images;
* a wheelhouse (the bridge's wheels — this project + cyclonedds + dependencies — and the wheels of any
  ``--requirements`` files) as bundle files ``upstream/wheelhouse/*``; at import it is copied to
  ``<state>/wheelhouse`` for ``deploy --offline --wheelhouse``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from hybrid_knative import __version__
from hybrid_knative.airgap.bundle import Unpacked
from hybrid_knative.dev.offline import base_images, build_wheelhouse, mirror_path
from hybrid_knative.errors import ConfigError
from hybrid_knative.manifests.images import ImageRef
from hybrid_knative.progress import Status
from hybrid_knative.system.buildah import is_local_registry
from hybrid_knative.system.registry import Skopeo
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring.ros2 import build_wheelhouse as bridge_wheelhouse
from hybrid_knative.wiring.ros2 import missing_wheels

OPTION = "functions"  # bundle create --with functions; recorded in bundle.json's components
WHEELHOUSE = "wheelhouse"  # folder of the bundle's upstream files, and of the state folder at import
_WHEEL_SUFFIXES = (".whl", ".gz", ".zip")


def images() -> list[ImageRef]:
    return [ImageRef.parse(name) for name in base_images()]


def wheelhouse(dest: Path, runner: Runner, *, given: Path | None = None,
               requirements: Sequence[Path] = ()) -> Path:
    """The wheelhouse to bundle: ``given`` (checked), else built here (needs the package index)."""
    if given is not None:
        if not given.is_dir():
            raise ConfigError(f"wheelhouse not found: {given}")
        missing = missing_wheels(given)
        if missing:
            raise ConfigError(f"the wheelhouse {given} lacks {', '.join(missing)} (the ROS 2 bridge's image needs "
                              "them)", resolution="leave --wheelhouse out to build one here, or add them with "
                              "`pip wheel -w DIR . cyclonedds` in a hybrid-knative checkout")
        return given
    bridge_wheelhouse(dest, runner)
    if requirements:
        build_wheelhouse(requirements, dest, runner)
    return dest


def upstream_entries(folder: Path) -> list[tuple[str, Path]]:
    """(bundle path under upstream/, local file) of every wheel or sdist in ``folder``."""
    return [(f"{WHEELHOUSE}/{p.name}", p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name.endswith(_WHEEL_SUFFIXES)]


def component_record() -> dict[str, str]:
    return {OPTION: __version__}


def has_functions(unpacked: Unpacked) -> bool:
    return OPTION in unpacked.manifest.components


def import_functions(unpacked: Unpacked, registry: str, state_dir: Path, *, runner: Runner, status: Status,
                     pushed_already: bool = False) -> tuple[list[str], Path | None]:
    """Push the bundle's function base images to ``registry`` under mirror_path() (skipped when the import
    already pushed every image there: --registry-mirror), and copy the wheelhouse to ``state_dir/wheelhouse``.
    Returns (the pushed references, the wheelhouse folder or None)."""
    wanted = {str(ref) for ref in images()}
    pushed: list[str] = []
    if not pushed_already:
        skopeo = Skopeo(runner)
        for image in unpacked.manifest.images:
            if str(ImageRef.parse(image.name)) not in wanted:
                continue
            dest = f"{registry}/{mirror_path(image.name)}"
            with status.step(f"Push {image.name} to {dest} (function builds)"):
                skopeo.copy(f"oci:{unpacked.layout}:{image.ref_name}", f"docker://{dest}",
                            dest_tls_verify=not is_local_registry(registry))
            pushed.append(dest)
    source = unpacked.upstream_dir / WHEELHOUSE
    if not source.is_dir():
        return pushed, None
    dest_dir = state_dir / WHEELHOUSE
    dest_dir.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(source.iterdir()):
        if wheel.is_file():
            shutil.copyfile(wheel, dest_dir / wheel.name)
    return pushed, dest_dir
