"""Base images for the image builds' tests, pushed to a registry of their own as library/python:3.12-slim (so the
session registry's bases stay as they are): Debian's python (``debian_registry``) and a python:3.12-slim
look-alike (``slim_like_registry``: a real CPython 3.12 under its own prefix, e.g. pyenv's). Import the fixtures
into a test module (``from tests.dev.python_bases import slim_like_registry``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airgap.conftest import Registry, start_registry
from tests.dev.conftest import Builder, _host_rootfs

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
