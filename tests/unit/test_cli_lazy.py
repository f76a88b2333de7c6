"""The lazy command table: `--help` imports no feature module and no heavy library, and every table line
says exactly what its command's own help says (so the table cannot drift)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hybrid_knative.cli.lazy import LazyGroup, table_mismatches
from hybrid_knative.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("lightkube", "httpx", "httpcore", "requests", "sh", "jinja2", "dns", "yaml", "cryptography", "zeroconf",
         "importlib.metadata")


def _imported_modules(*args: str) -> set[str]:
    """Every module `python -X importtime -m hybrid_knative ARGS` imports (stderr lists them)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "hybrid_knative", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    names = set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", line)
        if match:
            names.add(match.group(1))
    assert "click" in names, done.stderr[-2000:]  # the parse works: click itself is listed
    return names


def _loaded_modules(*args: str) -> set[str]:
    """sys.modules after `hybrid-knative ARGS` ran in a fresh interpreter (also sees importlib.import_module,
    which -X importtime does not report)."""
    code = ("import sys\nfrom hybrid_knative.cli.main import cli\ntry:\n"
            "    cli(sys.argv[1:], prog_name='hybrid-knative')\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('\\n'.join(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    names = set(done.stderr.split())
    assert "click" in names, done.stderr[-2000:]
    return names


def _heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


def test_help_imports_no_heavy_library_and_no_feature_module() -> None:
    names = _imported_modules("--help")
    assert _heavy(names) == []
    names |= _loaded_modules("--help")
    assert _heavy(names) == []
    features = sorted(n for n in names if n.startswith("hybrid_knative.") and n.split(".")[1] not in
                      ("cli", "config", "errors", "options", "progress", "validate", "versions"))
    assert features == []
    lazy_modules = {entry.target.partition(":")[0] for entry in cli.lazy.values()}
    assert lazy_modules and not (lazy_modules & names)


def test_a_feature_command_imports_its_module_when_invoked() -> None:
    names = _loaded_modules("doctor", "--help")
    assert "hybrid_knative.cli.doctor" in names
    assert "hybrid_knative.cli.join" not in names


def test_table_matches_each_commands_real_short_help() -> None:
    assert isinstance(cli, LazyGroup)
    with click.Context(cli) as ctx:
        assert table_mismatches(cli, ctx) == []


def test_table_entry_that_drifts_is_reported() -> None:
    group = LazyGroup(name="g")
    group.add_lazy("doctor", "hybrid_knative.cli.doctor:doctor", "Something else entirely.")
    with click.Context(group) as ctx:
        wrong = table_mismatches(group, ctx)
    assert len(wrong) == 1 and "doctor" in wrong[0]


def test_help_lists_every_command_and_commands_run() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in [*cli.commands, *cli.lazy]:
        assert re.search(rf"^\s+{re.escape(name)}\s", result.output, re.M), name
    nodes_help = CliRunner().invoke(cli, ["nodes", "--help"])
    assert nodes_help.exit_code == 0 and "approve" in nodes_help.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_version_is_looked_up_on_use() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("hybrid-knative, version ")
    import hybrid_knative

    assert isinstance(hybrid_knative.__version__, str)
    with pytest.raises(AttributeError):
        _ = hybrid_knative.no_such_attribute  # type: ignore[attr-defined]
