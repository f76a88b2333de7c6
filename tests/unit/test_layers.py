"""Layering (DESIGN.md): imports only point downwards — import-linter contracts in pyproject.toml —
and only the runner spawns processes."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "hybrid_knative"

ROOT = PKG.parents[1]


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                           "sys.exit(c())", "--no-cache", "--config", str(config)],
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)}, capture_output=True, text=True,
                          timeout=300, check=False)


def test_import_linter_contracts_are_kept() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]) — the same check `make lint` runs."""
    result = _lint(ROOT / "pyproject.toml", ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_catch_an_upward_import(tmp_path: Path) -> None:
    shutil.copytree(PKG, tmp_path / "hybrid_knative", ignore=shutil.ignore_patterns("_vendor", "__pycache__"))
    bad = tmp_path / "hybrid_knative" / "kube" / "sneaky.py"
    bad.write_text("from hybrid_knative.install.plan import plan\n")
    result = _lint(ROOT / "pyproject.toml", tmp_path)
    assert result.returncode != 0 and "hybrid_knative.kube.sneaky -> hybrid_knative.install.plan" in result.stdout


TEMPLATES = PKG / "dev" / "templates"  # users' starter code (copied by `new`), not part of the package's layers
SOURCES = sorted(p for p in PKG.rglob("*.py") if "_vendor" not in p.parts and TEMPLATES not in p.parents)


def test_only_the_runner_spawns_processes() -> None:
    spawners = {"subprocess", "os.system", "os.popen", "pty", "sh"}
    for path in SOURCES:
        if path.name == "runner.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & spawners, path
            if isinstance(node, ast.ImportFrom) and node.module in spawners | {"sh"}:
                pytest.fail(f"{path} imports {node.module}")
