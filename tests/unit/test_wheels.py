"""Wheels for an image's Python (system/wheels.py) and the gridfs initializer's wheelhouse: file names as tag cases,
and real `pip download` against a local folder index (--no-index: no network) with wheels for several Pythons."""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import pytest

from hybrid_knative.errors import ConfigError
from hybrid_knative.ml import initializer_image
from hybrid_knative.system import wheels
from hybrid_knative.system.runner import Runner

PYMONGO_311 = "pymongo-4.9.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
PYMONGO_312 = "pymongo-4.9.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
PYMONGO_312_ARM = "pymongo-4.9.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
DNSPYTHON = "dnspython-2.7.0-py3-none-any.whl"


@pytest.mark.parametrize(("name", "version", "arch", "fits"), [
    (PYMONGO_312, "3.12", "x86_64", True),
    (PYMONGO_311, "3.12", "x86_64", False),  # the host's (3.11) wheel in a 3.12 image
    (PYMONGO_312, "3.11", "x86_64", False),
    (PYMONGO_312_ARM, "3.12", "x86_64", False),
    (PYMONGO_312_ARM, "3.12", "aarch64", True),
    (DNSPYTHON, "3.12", "aarch64", True),
    ("cryptography-44.0.0-cp39-abi3-manylinux_2_34_x86_64.whl", "3.12", "x86_64", True),  # abi3 from 3.9 up
    ("cryptography-44.0.0-cp313-abi3-manylinux_2_34_x86_64.whl", "3.12", "x86_64", False),  # abi3 from 3.13
    ("numpy-2.1.0-cp312-cp312-manylinux_2_39_x86_64.whl", "3.12", "x86_64", False),  # newer glibc than Debian 12
    ("numpy-2.1.0-cp312-cp312-musllinux_1_2_x86_64.whl", "3.12", "x86_64", False),
    ("numpy-2.1.0-cp312-cp312-win_amd64.whl", "3.12", "x86_64", False),
    ("pymongo-4.9.0.tar.gz", "3.12", "x86_64", False),
    ("broken.whl", "3.12", "x86_64", False),
])
def test_wheel_fits_by_its_file_name_tags(name: str, version: str, arch: str, fits: bool) -> None:
    assert wheels.wheel_fits(name, version, arch) is fits


def test_image_python_from_the_from_line(tmp_path: Path) -> None:
    assert wheels.image_python("# c\nFROM docker.io/library/python:3.12-slim AS b\n") == "3.12"
    assert initializer_image.image_python() == "3.12"  # the shipped Containerfile
    (tmp_path / "Containerfile").write_text("FROM debian:12\n")
    with pytest.raises(ConfigError, match="names no python:X.Y base"):
        wheels.image_python(tmp_path / "Containerfile", what="x")


def test_download_args_target_the_image_not_the_host() -> None:
    argv = wheels.download_command(Path("/d"), ["pymongo"], "3.12", "aarch64")
    assert argv[:4] == ["python3", "-m", "pip", "download"] and argv[-1] == "pymongo"
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--python-version"] == "3.12" and pairs["--abi"] == "cp312" and pairs["--implementation"] == "cp"
    assert pairs["--dest"] == "/d" and "--only-binary=:all:" in argv
    platforms = [b for a, b in itertools.pairwise(argv) if a == "--platform"]
    assert platforms == wheels.manylinux_tags("aarch64")
    assert platforms[0] == "manylinux_2_36_aarch64" and "manylinux2014_aarch64" in platforms


def _fake_wheel(folder: Path, name: str) -> None:
    """A minimal valid wheel (metadata only) so a real pip resolves it from a local folder."""
    dist, version = name.split("-")[:2]
    info = f"{dist}-{version}.dist-info"
    requires = "Requires-Dist: dnspython<3.0.0,>=1.16.0\n" if dist == "pymongo" else ""
    tag = "-".join(name[:-4].split("-")[2:])
    with zipfile.ZipFile(folder / name, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requires}")
        zf.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n")
        zf.writestr(f"{info}/RECORD", "")


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    for name in (PYMONGO_311, PYMONGO_312, PYMONGO_312_ARM, DNSPYTHON):
        _fake_wheel(folder, name)
    return folder


@pytest.mark.parametrize(("version", "arch", "expected"), [
    ("3.12", "x86_64", PYMONGO_312), ("3.11", "x86_64", PYMONGO_311), ("3.12", "aarch64", PYMONGO_312_ARM)])
def test_download_wheels_fetches_for_the_image_python_and_arch(index: Path, tmp_path: Path, version: str,
                                                                arch: str, expected: str) -> None:
    """A real pip (whatever Python runs it) picks the wheel of the TARGET Python + arch from a local index."""
    dest = tmp_path / f"wh-{version}-{arch}"
    initializer_image.download_wheels(dest, Runner(), python_version=version, arch=arch,
                                      pip_args=("--no-index", "--find-links", str(index)))
    assert sorted(p.name for p in dest.iterdir()) == sorted([DNSPYTHON, expected])


def test_download_wheels_defaults_to_the_containerfile_python(index: Path, tmp_path: Path) -> None:
    if wheels.machine_arch() != "x86_64":
        pytest.skip("the fake index holds pymongo for x86_64 (and aarch64 for 3.12 only)")
    initializer_image.download_wheels(tmp_path / "wh", Runner(), pip_args=("--no-index", "--find-links", str(index)))
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == [DNSPYTHON, PYMONGO_312]


def test_download_without_a_fitting_wheel_is_a_clear_error(index: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        initializer_image.download_wheels(tmp_path / "wh", Runner(), python_version="3.13", arch="x86_64",
                                          pip_args=("--no-index", "--find-links", str(index)))
    assert "Python 3.13 on x86_64" in err.value.brief
    assert "--python-version 3.13" in str(err.value.resolution) and "--wheelhouse" in str(err.value.resolution)


def test_build_context_refuses_a_wheelhouse_for_another_python(tmp_path: Path) -> None:
    """The old .ci/run made the wheelhouse with the host's python3 (3.10/3.11): a cp311 pymongo in a 3.12 image."""
    wh = tmp_path / "wh"
    wh.mkdir()
    for name in (PYMONGO_311, DNSPYTHON):
        (wh / name).write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        initializer_image.build_context(tmp_path / "ctx", Runner(), wheelhouse=wh, python_version="3.12",
                                        arch="x86_64")
    assert "pymongo" in err.value.brief and "Python 3.12 (x86_64)" in err.value.brief
    resolution = str(err.value.resolution)
    assert "pip download" in resolution and "--python-version 3.12" in resolution and "--abi cp312" in resolution
    assert "--platform manylinux2014_x86_64" in resolution
    with pytest.raises(ConfigError, match="aarch64"):  # right Python, wrong machine
        initializer_image.build_context(tmp_path / "ctx", Runner(), wheelhouse=wh, python_version="3.11",
                                        arch="aarch64")
    ctx = initializer_image.build_context(tmp_path / "ctx", Runner(), wheelhouse=wh, python_version="3.11",
                                          arch="x86_64")  # fits: the context is made
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == [DNSPYTHON, PYMONGO_311]
    assert (ctx / "Containerfile").is_file() and (ctx / "gridfs_initializer.py").is_file()
