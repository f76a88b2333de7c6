"""Fixtures for the snap tests: the build script as a module, the addon git repository it makes, the fakes."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.snap.fakes import Fakes

REPO = Path(__file__).resolve().parents[2]

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed (apt install git)")


def _load_build_snap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_snap", REPO / "scripts" / "build_snap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_snap() -> ModuleType:
    return _load_build_snap()


@pytest.fixture(scope="session")
def addon_repo(build_snap: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$SNAP/addon-repo as the build makes it."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed (apt install git)")
    dest = tmp_path_factory.mktemp("snap") / "addon-repo"
    build_snap.build_addon_repo(dest)
    return dest


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    fake = Fakes(tmp_path / "fakes")
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    yield fake
