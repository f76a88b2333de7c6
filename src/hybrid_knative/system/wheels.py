"""Wheels for an image's Python: images built ``FROM …python:X.Y-slim`` install a wheelhouse offline
(``pip install --no-index``), so its wheels must be for the IMAGE's CPython X.Y and this machine's architecture
(buildah builds for it), whatever Python runs hybrid-knative here.

One place for: the image's Python from a Containerfile's ``FROM`` line, the manylinux platform tags its glibc
installs, this machine's wheel architecture, whether a wheel file fits (its file-name tags), and the
``pip download`` arguments that fetch wheels for a target Python + architecture.
"""

from __future__ import annotations

import platform
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from hybrid_knative.errors import ConfigError

GLIBC_MINOR = 36  # python:3.X-slim is Debian 12: glibc 2.36

_FROM_PYTHON = re.compile(r"^FROM\s+\S*python:(\d+\.\d+)", re.MULTILINE)


def image_python(containerfile: Path | str, *, what: str = "the image") -> str:
    """The Python version (``3.12``) of a Containerfile's/Dockerfile's ``FROM …python:X.Y…`` base.

    ``containerfile`` is a path or the file's text; ``what`` names the image in the error."""
    text = containerfile.read_text() if isinstance(containerfile, Path) else containerfile
    found = _FROM_PYTHON.search(text)
    if not found:
        raise ConfigError(f"the Containerfile of {what} names no python:X.Y base")
    return found.group(1)


def machine_arch() -> str:
    """This machine's architecture in wheel platform tags (x86_64, aarch64): buildah builds for it."""
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def manylinux_tags(arch: str) -> list[str]:
    """Every manylinux platform tag a glibc-2.36 system of ``arch`` installs, newest first (pip does not expand a
    ``manylinux_2_36`` --platform to the older ones)."""
    return [*(f"manylinux_2_{m}_{arch}" for m in range(GLIBC_MINOR, 4, -1)),
            f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def cp_tag(version: str) -> str:
    """``3.12`` → ``cp312``."""
    return "cp" + version.replace(".", "")


def wheel_fits(name: str, version: str, arch: str) -> bool:
    """Whether a wheel file installs on CPython ``version`` (X.Y) on Linux ``arch`` (by its file-name tags)."""
    parts = name[:-len(".whl")].split("-") if name.endswith(".whl") else []
    if len(parts) < 5:
        return False
    pythons, abis, platforms = (set(parts[-3].split(".")), set(parts[-2].split(".")), parts[-1].split("."))
    here = cp_tag(version)
    minor = int(version.split(".")[1])
    python_ok = bool(pythons & {"py3", "py2.py3", f"py{version.replace('.', '')}", here}) or (
        "abi3" in abis and any(p.startswith("cp3") and p[3:].isdigit() and int(p[3:]) <= minor for p in pythons))
    abi_ok = bool(abis & {"none", "abi3", here})
    platform_ok = any(p == "any" or p in manylinux_tags(arch) for p in platforms)
    return python_ok and abi_ok and platform_ok


def dist_name(wheel: str) -> str:
    """A wheel file's distribution, normalized as in its file name (``pymongo``, ``hybrid_knative``)."""
    return wheel.split("-", 1)[0].lower()


def unfit_wheels(folder: Path, version: str, arch: str) -> list[str]:
    """Distributions in ``folder`` none of whose wheels installs on CPython ``version`` on ``arch`` (e.g. a
    wheelhouse made by a Python 3.11 host: pymongo's cp311 wheel does not install on 3.12)."""
    by_dist: dict[str, list[str]] = {}
    for whl in folder.glob("*.whl"):
        by_dist.setdefault(dist_name(whl.name), []).append(whl.name)
    return sorted(d for d, names in by_dist.items() if not any(wheel_fits(n, version, arch) for n in names))


def target_args(version: str, arch: str) -> list[str]:
    """``pip download`` arguments for binary wheels that install on CPython ``version`` on Linux ``arch``."""
    return ["--only-binary=:all:", "--python-version", version, "--implementation", "cp", "--abi", cp_tag(version),
            *[arg for tag in manylinux_tags(arch) for arg in ("--platform", tag)]]


def download_command(dest: Path | str, requirements: Sequence[str], version: str, arch: str, *,
                     python: str = "python3", extra: Sequence[str] = ()) -> list[str]:
    """The ``pip download`` command that puts wheels for CPython ``version`` on ``arch`` into ``dest``."""
    return [python, "-m", "pip", "download", "--disable-pip-version-check", *extra, "--dest", str(dest),
            *target_args(version, arch), *requirements]


def download_hint(requirements: Sequence[str], version: str, arch: str) -> str:
    """:func:`download_command` as a shell line for people, with ``DIR`` for the folder (pip does not widen one
    ``--platform`` to older manylinux tags, so every tag is spelled out)."""
    return shlex.join(download_command("DIR", requirements, version, arch, python="python3"))
