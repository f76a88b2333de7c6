"""The ROS 2 bridge image, built on the functions' path (buildah vfs/chroot → docker-registry, by digest) from
the shipped Dockerfile and a wheelhouse (`pip wheel` of this project + cyclonedds; --no-index in the build,
so it works offline): the image runs `hybrid-knative ros2 types` and imports cyclonedds; a rebuild of the
same wheels keeps the digest (a re-deploy writes nothing)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_knative.dev.deploy import build_and_push
from hybrid_knative.dev.project import Event, Function, Project
from hybrid_knative.dev.registry import Registry as PushTarget
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring.ros2 import IMAGE_KEY, Ros2Bridges, bridge_context, missing_wheels
from tests.airgap.conftest import Registry, start_registry
from tests.dev.conftest import Builder, _host_rootfs, skopeo_digest

BRIDGE_WHEELHOUSE = Path(os.environ.get("HK_TEST_BRIDGE_WHEELHOUSE", str(
    Path.home() / ".cache" / "hybrid-knative" / "bridge-wheelhouse")))
QUIET = Status(verbosity=-1)


# Shared libraries that wheels' extension modules load (a real python:3.12-slim has them all)
WHEEL_LIBS = ("libpthread.so.0", "libdl.so.2", "librt.so.1", "libm.so.6", "libgcc_s.so.1", "libutil.so.1",
              "libstdc++.so.6", "libz.so.1")
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


@pytest.fixture
def python_registry(builder: Builder, tmp_path: Path) -> Iterator[Registry]:
    """A registry whose library/python:3.12-slim is this host's Debian python with pip, a shell and the shared
    libraries wheels need (the bridge's Dockerfile RUNs pip), so the session registry's bases stay as they are."""
    if not all((LIBDIR / lib).exists() for lib in WHEEL_LIBS):
        pytest.skip(f"needs a Debian x86_64 host with {', '.join(WHEEL_LIBS)} in {LIBDIR}")
    python = Path("/usr/bin/python3")
    version = python.resolve().name
    libs = [str((LIBDIR / lib).resolve()) for lib in WHEEL_LIBS]
    links = {"bin": "usr/bin", "usr/bin/sh": "dash"}
    links.update({f"usr/lib/x86_64-linux-gnu/{lib}": (LIBDIR / lib).resolve().name for lib in WHEEL_LIBS
                  if (LIBDIR / lib).resolve().name != lib})
    tar = _host_rootfs(tmp_path / "bridge-base", [str(python), "/usr/bin/dash", *libs],
                       [f"/usr/lib/{version}", "/usr/lib/python3/dist-packages/pip"], links=links)
    buildah = builder.buildah
    ctr = buildah.run(["from", "scratch"]).stdout.strip().splitlines()[-1]
    buildah.run(["add", ctr, str(tar), "/"])
    buildah.run(["config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--cmd", "python3", ctr])
    buildah.run(["commit", "-q", ctr, "localhost/base/bridge-python"])
    buildah.run(["rm", ctr])
    reg, proc = start_registry(tmp_path / "pyreg")
    buildah.push("localhost/base/bridge-python", f"{reg.host}/library/python:3.12-slim")
    yield reg
    proc.terminate()
    proc.wait(timeout=10)


def test_wheelhouse_without_the_bridge_wheels_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "flask-3.1.3-py3-none-any.whl").write_bytes(b"")
    assert missing_wheels(tmp_path / "wh") == ["hybrid-knative", "cyclonedds"]
    with pytest.raises(ConfigError) as err:
        bridge_context(tmp_path / "ctx", Runner(), wheelhouse=tmp_path / "wh")
    assert "bundle create --with functions" in str(err.value.resolution)


@pytest.mark.integration
def test_bridge_image_builds_offline_runs_and_is_reproducible(builder: Builder, python_registry: Registry,
                                                              tmp_path: Path) -> None:
    if missing_wheels(BRIDGE_WHEELHOUSE) if BRIDGE_WHEELHOUSE.is_dir() else True:
        pytest.skip(f"needs the bridge wheelhouse at {BRIDGE_WHEELHOUSE} (.ci/run makes it: `python3 -c 'from "
                    "hybrid_knative.wiring.ros2 import build_wheelhouse; …'`; HK_TEST_BRIDGE_WHEELHOUSE moves it)")
    buildah = dataclasses.replace(builder.buildah, mirrors={"docker.io": python_registry.host})
    target = PushTarget(builder.registry.host, builder.registry.host, "--registry")
    project = Project(name="shop", root=tmp_path, source=tmp_path / "hybrid-knative.yaml", functions=())
    fn = Function(name="detect", service="detect", image="r/detect@sha256:" + "a" * 64,
                  events=(Event("ros2", {"topic": "/camera/info", "type": "std_msgs/msg/String"}),))
    with_ros2 = dataclasses.replace(project, functions=(fn,))
    images = []
    for attempt in range(2):
        (tmp_path / f"work{attempt}").mkdir()
        companion = Ros2Bridges(tmp_path / f"work{attempt}", Runner(), wheelhouse=BRIDGE_WHEELHOUSE)
        extra = companion.builds(with_ros2, with_ros2.functions)  # the context deploy builds
        assert [b.key for b in extra] == [IMAGE_KEY] and (extra[0].context / "wheels").is_dir()
        built = build_and_push(project, [], buildah, target, QUIET, extra)
        images.append(built[IMAGE_KEY])
    assert images[0] == images[1]  # same wheels → same digest → a re-deploy writes nothing
    assert images[0].startswith(f"{builder.registry.host}/default/ros2-bridge@sha256:")
    assert skopeo_digest(images[0]) == images[0].split("@")[1]

    base = ["buildah", "--root", str(buildah.root), "--runroot", str(buildah.runroot), "--storage-driver", "vfs"]
    local = "localhost/hybrid-knative/default/ros2-bridge:build"
    ctr = subprocess.run([*base, "from", local], capture_output=True, text=True, check=True,
                         timeout=300).stdout.strip().splitlines()[-1]
    try:
        out = subprocess.run([*base, "run", "--isolation", "chroot", ctr, "--", "hybrid-knative", "ros2", "types"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "std_msgs/msg/String" in out.stdout and "sensor_msgs/msg/Imu" in out.stdout
        dds = subprocess.run([*base, "run", "--isolation", "chroot", ctr, "--", "python3", "-c",
                              "import cyclonedds.domain, os; print(os.getuid())"],
                             capture_output=True, text=True, timeout=300)
        assert dds.returncode == 0, dds.stderr
        assert dds.stdout.strip() == "65532"  # the image runs as non-root, as the Deployment requires
        wheels = subprocess.run([*base, "run", "--isolation", "chroot", ctr, "--", "python3", "-c",
                                 "import os; print(os.path.exists('/tmp/wheels'))"],
                                capture_output=True, text=True, timeout=300)
        assert wheels.stdout.strip() == "False"  # the wheelhouse is not left in the image
    finally:
        subprocess.run([*base, "rm", ctr], capture_output=True, timeout=120)


def test_no_package_index_is_a_clear_error(tmp_path: Path) -> None:
    from hybrid_knative.wiring.ros2 import build_wheelhouse

    with pytest.raises(ConfigError) as err:  # a pip that fails, as without the index
        build_wheelhouse(tmp_path / "wh", Runner(), python="/bin/false")
    assert "--wheelhouse" in str(err.value.resolution) and "ros2.image" in str(err.value.resolution)
