"""The ROS 2 bridge image, built on the functions' path (buildah vfs/chroot → docker-registry, by digest) from
the shipped Dockerfile and a wheelhouse (`pip wheel` of this project + cyclonedds; --no-index in the build,
so it works offline): the image runs `hybrid-knative ros2 types` and imports cyclonedds; a rebuild of the
same wheels keeps the digest (a re-deploy writes nothing)."""

from __future__ import annotations

import dataclasses
import os
import shutil
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
from hybrid_knative.system.wheels import manylinux_tags
from hybrid_knative.wiring.ros2 import (
    IMAGE_KEY,
    Ros2Bridges,
    bridge_context,
    image_python,
    missing_wheels,
    unfit_wheels,
)
from tests.airgap.conftest import Registry, start_registry
from tests.dev.conftest import Builder, _host_rootfs, skopeo_digest

BRIDGE_WHEELHOUSE = Path(os.environ.get("HK_TEST_BRIDGE_WHEELHOUSE", str(
    Path.home() / ".cache" / "hybrid-knative" / "bridge-wheelhouse")))
QUIET = Status(verbosity=-1)


# Shared libraries that wheels' extension modules load (a real python:3.12-slim has them all)
WHEEL_LIBS = ("libpthread.so.0", "libdl.so.2", "librt.so.1", "libm.so.6", "libgcc_s.so.1", "libutil.so.1",
              "libstdc++.so.6", "libz.so.1")
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


def _push_base(builder: Builder, tmp_path: Path, binaries: list[str], trees: list[str], links: dict[str, str],
               scripts: dict[str, bytes] | None = None) -> Iterator[Registry]:
    """A registry whose library/python:3.12-slim is the given root filesystem, so the session registry's bases
    stay as they are."""
    tar = _host_rootfs(tmp_path / "bridge-base", binaries, trees, links=links, scripts=scripts)
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


def _wheel_libs() -> tuple[list[str], dict[str, str]]:
    if not all((LIBDIR / lib).exists() for lib in WHEEL_LIBS):
        pytest.skip(f"needs a Debian x86_64 host with {', '.join(WHEEL_LIBS)} in {LIBDIR}")
    libs = [str((LIBDIR / lib).resolve()) for lib in WHEEL_LIBS]
    links = {"bin": "usr/bin", "usr/bin/sh": "dash"}
    links.update({f"usr/lib/x86_64-linux-gnu/{lib}": (LIBDIR / lib).resolve().name for lib in WHEEL_LIBS
                  if (LIBDIR / lib).resolve().name != lib})
    return libs, links


@pytest.fixture
def debian_registry(builder: Builder, tmp_path: Path) -> Iterator[Registry]:
    """This host's Debian python (/usr/bin/python3, its stdlib in /usr/lib/python3.X, pip from dist-packages) with
    Debian's PEP 668 EXTERNALLY-MANAGED marker, a shell and the shared libraries wheels need."""
    python = Path("/usr/bin/python3")
    version = python.resolve().name
    libs, links = _wheel_libs()
    marker = b"[externally-managed]\nError=use apt (this base is Debian's python)\n"
    yield from _push_base(builder, tmp_path, [str(python), "/usr/bin/dash", *libs],
                          [f"/usr/lib/{version}", "/usr/lib/python3/dist-packages/pip"], links,
                          scripts={f"usr/lib/{version}/EXTERNALLY-MANAGED": marker})


def _python312_prefix() -> Path | None:
    """A CPython 3.12 installed under its own prefix on this host (pyenv's), with pip in its site-packages."""
    candidates = [os.environ.get("HK_TEST_PYTHON312", ""), shutil.which("python3.12") or "",
                  *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
                  "/usr/local/bin/python3.12"]
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True,
                                 timeout=60)
        except OSError:
            continue
        prefix = Path(out.stdout.strip()) if out.returncode == 0 else None
        if prefix and prefix != Path("/usr") and (prefix / "lib/python3.12/site-packages/pip").is_dir():
            return prefix
    return None


@pytest.fixture
def slim_like_registry(builder: Builder, tmp_path: Path) -> Iterator[Registry]:
    """A base laid out like python:3.12-slim rather than Debian's: a real Python 3.12 under its own prefix, reached
    only as /usr/local/bin/python3 (no /usr/bin/python3, no dist-packages, no EXTERNALLY-MANAGED)."""
    prefix = _python312_prefix()
    if prefix is None:
        pytest.skip("needs a CPython 3.12 under its own prefix (e.g. pyenv's) to make a python:3.12-slim-like base")
    libs, links = _wheel_libs()
    links["usr/local/bin/python3"] = str(prefix / "bin" / "python3.12")
    yield from _push_base(builder, tmp_path, [str(prefix / "bin" / "python3.12"), "/usr/bin/dash", *libs],
                          [str(prefix / "lib" / "python3.12"), str(prefix / "lib/python3.12/site-packages/pip")],
                          links)


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
def test_bridge_image_on_a_python_slim_like_base_is_reproducible(builder: Builder, slim_like_registry: Registry,
                                                                 tmp_path: Path) -> None:
    """Python 3.12 (what the Dockerfile names) under /usr/local/bin only: wheels for 3.12 although the host
    runs another Python; built twice, same digest."""
    _build(builder, slim_like_registry, tmp_path, "3.12", times=2)


@pytest.mark.integration
def test_bridge_image_on_debians_python_despite_pep_668(builder: Builder, debian_registry: Registry,
                                                        tmp_path: Path) -> None:
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
