"""The ROS 2 bridge image, built on the functions' path (buildah vfs/chroot → docker-registry, by digest) from
the shipped Dockerfile and a wheelhouse (`pip wheel` of this project + cyclonedds; --no-index in the build,
so it works offline): the image runs `hybrid-knative ros2 types` and imports cyclonedds; a rebuild of the
same wheels keeps the digest (a re-deploy writes nothing)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from hybrid_knative.dev.deploy import build_and_push
from hybrid_knative.dev.project import Event, Function, Project
from hybrid_knative.dev.registry import Registry as PushTarget
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.system.runner import Runner
from hybrid_knative.system.wheels import manylinux_tags
from hybrid_knative.wiring.ros2 import (
    IMAGE_KEY,
    Ros2Bridges,
    bridge_context,
    image_python,
    missing_wheels,
    unfit_wheels,
)
from tests.airgap.conftest import Registry
from tests.dev.conftest import Builder, skopeo_digest
from tests.dev.python_bases import debian_registry, slim_like_registry  # noqa: F401 - fixtures

BRIDGE_WHEELHOUSE = Path(os.environ.get("HK_TEST_BRIDGE_WHEELHOUSE", str(
    Path.home() / ".cache" / "hybrid-knative" / "bridge-wheelhouse")))
QUIET = Status(verbosity=-1)


def test_wheelhouse_without_the_bridge_wheels_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "flask-3.1.3-py3-none-any.whl").write_bytes(b"")
    assert missing_wheels(tmp_path / "wh") == ["hybrid-knative", "cyclonedds"]
    with pytest.raises(ConfigError) as err:
        bridge_context(tmp_path / "ctx", Runner(), wheelhouse=tmp_path / "wh")
    assert "bundle create --with functions" in str(err.value.resolution)


def _build(builder: Builder, base: Registry, tmp_path: Path, python_version: str, times: int) -> None:
    """Build the bridge image ``times`` times from the wheelhouse on ``base`` (as library/python:3.12-slim), push it,
    and run it: `hybrid-knative ros2 types`, cyclonedds, uid 65532, no wheels left behind."""
    unfit = unfit_wheels(BRIDGE_WHEELHOUSE, python_version) if BRIDGE_WHEELHOUSE.is_dir() else ["all"]
    if missing_wheels(BRIDGE_WHEELHOUSE) if BRIDGE_WHEELHOUSE.is_dir() else True:
        pytest.skip(f"needs the bridge wheelhouse at {BRIDGE_WHEELHOUSE} (.ci/run makes it with build_wheelhouse; "
                    "HK_TEST_BRIDGE_WHEELHOUSE moves it)")
    if "cyclonedds" in unfit:
        pytest.skip(f"the bridge wheelhouse at {BRIDGE_WHEELHOUSE} has no wheels for Python {python_version} "
                    f"(.ci/run: build_wheelhouse(..., python_version={python_version!r}))")
    buildah = dataclasses.replace(builder.buildah, mirrors={"docker.io": base.host})
    target = PushTarget(builder.registry.host, builder.registry.host, "--registry")
    project = Project(name="shop", root=tmp_path, source=tmp_path / "hybrid-knative.yaml", functions=())
    fn = Function(name="detect", service="detect", image="r/detect@sha256:" + "a" * 64,
                  events=(Event("ros2", {"topic": "/camera/info", "type": "std_msgs/msg/String"}),))
    with_ros2 = dataclasses.replace(project, functions=(fn,))
    images = []
    for attempt in range(times):
        (tmp_path / f"work{attempt}").mkdir()
        companion = Ros2Bridges(tmp_path / f"work{attempt}", Runner(), wheelhouse=BRIDGE_WHEELHOUSE,
                                python_version=python_version)
        extra = companion.builds(with_ros2, with_ros2.functions)  # the context deploy builds
        assert [b.key for b in extra] == [IMAGE_KEY] and (extra[0].context / "wheels").is_dir()
        built = build_and_push(project, [], buildah, target, QUIET, extra)
        images.append(built[IMAGE_KEY])
    assert len(set(images)) == 1  # same wheels → same digest → a re-deploy writes nothing
    assert images[0].startswith(f"{builder.registry.host}/default/ros2-bridge@sha256:")
    assert skopeo_digest(images[0]) == images[0].split("@")[1]

    base_cmd = ["buildah", "--root", str(buildah.root), "--runroot", str(buildah.runroot), "--storage-driver", "vfs"]
    local = "localhost/hybrid-knative/default/ros2-bridge:build"
    ctr = subprocess.run([*base_cmd, "from", local], capture_output=True, text=True, check=True,
                         timeout=300).stdout.strip().splitlines()[-1]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base_cmd, "run", "--isolation", "chroot", ctr, "--", *argv],
                              capture_output=True, text=True, timeout=300)

    try:
        out = run("hybrid-knative", "ros2", "types")  # the Deployment's command, found on the image's PATH
        assert out.returncode == 0, out.stderr
        assert "std_msgs/msg/String" in out.stdout and "sensor_msgs/msg/Imu" in out.stdout
        dds = run("python3", "-c", "import sys, os, cyclonedds.domain, hybrid_knative; "
                  "print(os.getuid(), '%d.%d' % sys.version_info[:2], hybrid_knative.__file__)")
        assert dds.returncode == 0, dds.stderr
        uid, version, where = dds.stdout.split()
        assert uid == "65532"  # the image runs as non-root, as the Deployment requires
        assert version == python_version  # the base's own interpreter, with wheels made for it
        assert where.startswith("/opt/hybrid-knative/")  # not the base's site-packages
        wheels = run("python3", "-c", "import os; print(os.path.exists('/tmp/wheels'))")
        assert wheels.stdout.strip() == "False"  # the wheelhouse is not left in the image
    finally:
        subprocess.run([*base_cmd, "rm", ctr], capture_output=True, timeout=120)


@pytest.mark.integration
def test_bridge_image_on_a_python_slim_like_base_is_reproducible(
        builder: Builder, slim_like_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    """Python 3.12 (what the Dockerfile names) under /usr/local/bin only: wheels for 3.12 although the host
    runs another Python; built twice, same digest."""
    _build(builder, slim_like_registry, tmp_path, "3.12", times=2)


@pytest.mark.integration
def test_bridge_image_on_debians_python_despite_pep_668(
        builder: Builder, debian_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    """Debian's python3 (/usr/bin, dist-packages, EXTERNALLY-MANAGED): `pip --target` installs anyway."""
    version = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    _build(builder, debian_registry, tmp_path, version, times=1)


def test_a_wheelhouse_for_another_python_is_a_clear_error(tmp_path: Path) -> None:
    """The bundle of an older version held the host's cp311 wheels: on a 3.12 base pip would fail in the build."""
    wh = tmp_path / "wh"
    wh.mkdir()
    for name in ("hybrid_knative-0.1.0-py3-none-any.whl", "cyclonedds-11.0.1-cp311-cp311-manylinux_2_17_x86_64."
                 "manylinux2014_x86_64.whl", "pyyaml-6.0.4-cp311-cp311-manylinux2014_x86_64.whl"):
        (wh / name).write_bytes(b"")
    assert unfit_wheels(wh, "3.12", "x86_64") == ["cyclonedds", "pyyaml"]
    assert unfit_wheels(wh, "3.11", "x86_64") == []
    assert unfit_wheels(wh, "3.11", "aarch64") == ["cyclonedds", "pyyaml"]
    with pytest.raises(ConfigError) as err:
        bridge_context(tmp_path / "ctx", Runner(), wheelhouse=wh, python_version="3.12")
    assert "cyclonedds" in err.value.brief and "3.12" in err.value.brief
    bridge_context(tmp_path / "ctx", Runner(), wheelhouse=wh, python_version="3.11")  # fits: no error


def test_the_image_python_comes_from_the_dockerfile() -> None:
    assert image_python() == "3.12"
    assert "manylinux_2_36_x86_64" in manylinux_tags("x86_64") and "manylinux2014_x86_64" in manylinux_tags("x86_64")


def test_no_package_index_is_a_clear_error(tmp_path: Path) -> None:
    from hybrid_knative.wiring.ros2 import build_wheelhouse

    with pytest.raises(ConfigError) as err:  # a pip that fails, as without the index
        build_wheelhouse(tmp_path / "wh", Runner(), python="/bin/false")
    assert "--wheelhouse" in str(err.value.resolution) and "ros2.image" in str(err.value.resolution)
