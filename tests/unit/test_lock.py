"""Issue 11 item 16: dependencies are pinned with hashes, and the snap build, the addon shim's venv and CI
install exactly the lock (pip --require-hashes), then the package with --no-deps."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, int]:
    """name -> number of hashes of each pinned requirement."""
    out: dict[str, int] = {}
    current = None
    for line in path.read_text().splitlines():
        match = _REQ.match(line)
        if match:
            current = _norm(match[1])
            out[current] = 0
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            out[current] += 1
    return out


def _declared(extra: str | None) -> set[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in deps}
    return {n for n in names if n != "hybrid-knative"}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_locks_pin_every_declared_dependency_with_hashes() -> None:
    runtime = locked(REPO / "requirements" / "lock.txt")
    dev = locked(REPO / "requirements" / "lock-dev.txt")
    assert runtime and all(n >= 1 for n in runtime.values()), runtime
    assert all(n >= 1 for n in dev.values())
    missing = _declared(None) - set(runtime)
    assert not missing, f"requirements/lock.txt lacks {missing}: run `make lock`"
    missing = (_declared(None) | _declared("test") | _declared("dev")) - set(dev)
    assert not missing, f"requirements/lock-dev.txt lacks {missing}: run `make lock`"


def test_ci_installs_the_lock_with_hashes() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet --require-hashes -r requirements/lock-dev.txt" in script
    assert "pip install --quiet --no-deps -e ." in script
    assert "-e '.[dev]'" not in script


def test_the_snap_build_installs_the_lock_then_the_package_alone(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    build = _load(REPO / "scripts" / "build_snap.py", "build_snap_for_lock_test")
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kw: Any) -> str:
        calls.append([str(a) for a in argv])
        if "wheel" in argv:
            wheels = Path(argv[argv.index("--wheel-dir") + 1])
            wheels.mkdir(parents=True, exist_ok=True)
            (wheels / "hybrid_knative-0.1.0-py3-none-any.whl").write_bytes(b"")
        return ""

    monkeypatch.setattr(build, "run", fake_run)
    build.install_packages(tmp_path / "site", python_version="3.10", arch="amd64", pip_args=[], repo=REPO)
    installs = [c for c in calls if "install" in c]
    assert len(installs) == 2
    deps, package = installs
    assert "--require-hashes" in deps and deps[deps.index("-r") + 1] == str(REPO / "requirements" / "lock.txt")
    assert "--no-deps" in package and package[-1].endswith(".whl") and "-r" not in package
    assert "requirements" in build.REPO_FILES  # the addon repository (and its shim) carries the lock


def test_the_shim_venv_installs_the_lock_then_the_package_alone(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shim = _load(REPO / "addons" / "hybrid-knative" / "_shim.py", "hk_shim_for_lock_test")
    repo = tmp_path / "repo"
    (repo / "requirements").mkdir(parents=True)
    (repo / "requirements" / "lock.txt").write_text("click==8.1.7 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    (repo / "pyproject.toml").write_text("[project]\nname = 'hybrid-knative'\n")
    calls: list[list[str]] = []
    venv = tmp_path / "venv"

    def fake_create(v: Path, env: Any, r: Path) -> dict[str, str]:
        (v / "bin").mkdir(parents=True)
        return {}

    def fake_run(argv: list[str], env: Any, cwd: str | None = None) -> tuple[int, str]:
        calls.append(list(argv))
        if "--no-deps" in argv:  # the package install puts the command in place
            command = venv / "bin" / shim.COMMAND
            command.write_text("#!/bin/sh\n")
            command.chmod(0o755)
        return 0, ""

    monkeypatch.setattr(shim, "_create_venv", fake_create)
    monkeypatch.setattr(shim, "_run", fake_run)
    shim.build_venv(venv, repo, {}, {"version": "0.1.0"})
    assert len(calls) == 2
    deps, package = calls
    assert "--require-hashes" in deps and deps[deps.index("-r") + 1] == str(repo / "requirements" / "lock.txt")
    assert "--no-deps" in package and "-r" not in package
