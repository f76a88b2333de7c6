"""Layering (DESIGN.md): imports only point downwards. Checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "hybrid_knative"

# module prefix -> packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "cli": set(),
    "addon": {"cli"},
    "install": {"cli", "addon"},
    "kube": {"cli", "addon", "install", "join"},
    "system": {"cli", "addon", "install", "kube", "join"},
    "dns": {"cli", "addon", "install"},
    "doctor": {"cli", "addon", "install"},
    "smoke": {"cli", "addon", "install"},
    "airgap": {"cli", "addon", "install"},
    "join": {"cli", "addon", "install"},
    "config": {"cli", "addon", "install", "kube", "system", "join"},
    "errors": {"cli", "addon", "install", "kube", "system", "join", "config"},
    "catalog": {"cli", "addon", "install", "kube", "system", "join"},
    "upstream": {"cli", "addon", "install", "kube", "system", "join"},
    "progress": {"cli", "addon", "install", "kube", "system", "join"},
    "bootstrap": {"cli", "addon", "install", "kube", "join"},
    "snaphooks": {"cli", "addon", "install", "kube"},
    "ml": {"cli", "addon"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "hybrid_knative" and len(parts) > 1:
                found.add(parts[1])
    return found


SOURCES = sorted(p for p in PKG.rglob("*.py") if "_vendor" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_downwards(path: Path) -> None:
    layer = _layer(path)
    bad = _imports(path) & FORBIDDEN.get(layer, set())
    assert not bad, f"{path.relative_to(PKG)} ({layer}) imports {sorted(bad)}"


def test_every_layer_is_known() -> None:
    layers = {_layer(p) for p in SOURCES} - {"__init__", "__main__", "components", "_vendor"}
    assert layers <= set(FORBIDDEN), f"add a rule for {sorted(layers - set(FORBIDDEN))}"


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from hybrid_knative.install.plan import plan\nimport hybrid_knative.cli.main\n")
    assert _imports(bad) == {"install", "cli"}


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
