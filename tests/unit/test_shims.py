"""The addon hooks addons/hybrid-knative/{enable,disable} run as MicroK8s runs them.

Real subprocesses, on Python 3.10 when there is one (MicroK8s's own Python is 3.10), with the
environment MicroK8s gives an addon script (SNAP*, REAL_PATH, a PYTHONPATH and LD_LIBRARY_PATH into
the snap, the working directory $SNAP) faked with temporary folders. The runtime they hand over to
is a fake `hybrid-knative` that records its argv and environment, or a dummy wheel installed into
the venv the shim bootstraps offline from a wheelhouse.
"""

from __future__ import annotations

import ast
import base64
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDON_DIR = REPO / "addons" / "hybrid-knative"
SHIM_FILES = ("enable", "disable", "_shim.py")
HOOKS = ("enable", "disable")
INSTALL_HINT = "sudo snap install hybrid-knative --classic"
PREPARING = "hybrid-knative: Preparing the hybrid-knative runtime (first run only)"


def _python310() -> str | None:
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.10*/bin/python3.10"))
    if shutil.which("python3.10"):
        candidates.append(shutil.which("python3.10") or "")
    for candidate in candidates:
        try:
            done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == "(3, 10)":
            return candidate
    return None


PY310 = _python310()
SHIM_PYTHON = PY310 or sys.executable
SHIM_PYTHON_HOME = subprocess.run(
    [SHIM_PYTHON, "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True, check=True
).stdout.strip()

FAKE_RUNTIME = """#!{python}
import json, os, signal, sys
with open(os.environ["FAKE_RECORD"], "a", encoding="utf-8") as out:
    out.write(json.dumps({{"tag": {tag!r}, "argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
if os.environ.get("FAKE_SIGNAL"):
    os.kill(os.getpid(), int(os.environ["FAKE_SIGNAL"]))
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def write_fake(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hybrid-knative"
    path.write_text(FAKE_RUNTIME.format(python=sys.executable, tag=tag), encoding="utf-8")
    path.chmod(0o755)
    return path


@dataclass
class Snap:
    """A fake MicroK8s addon environment in tmp folders."""

    root: Path
    env: dict[str, str]

    @property
    def snap(self) -> Path:
        return Path(self.env["SNAP"])

    @property
    def common(self) -> Path:
        return Path(self.env["SNAP_COMMON"])

    @property
    def host_bin(self) -> Path:
        return self.root / "host-bin"

    @property
    def record(self) -> Path:
        return Path(self.env["FAKE_RECORD"])

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines()]

    def last(self) -> dict[str, Any]:
        calls = self.calls()
        assert calls, "the runtime was not run"
        return calls[-1]

    def run(self, hook: str, *args: str, repo: Path = REPO,
            **extra: str | None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        done = subprocess.run(
            [SHIM_PYTHON, str(repo / "addons" / "hybrid-knative" / hook), *args],
            env=env, cwd=self.snap, capture_output=True, text=True, timeout=180, check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done


@pytest.fixture
def snap(tmp_path: Path) -> Snap:
    root = tmp_path
    snap_dir = root / "snap" / "microk8s" / "1234"
    for sub in ("usr/bin", "bin", "usr/lib/python3/dist-packages", "lib"):
        (snap_dir / sub).mkdir(parents=True)
    (root / "host-bin").mkdir()
    env = {
        "HOME": str(root / "home"),
        "LANG": "C.UTF-8",
        "SNAP": str(snap_dir),
        "SNAP_NAME": "microk8s",
        "SNAP_REVISION": "1234",
        "SNAP_ARCH": "amd64",
        "SNAP_DATA": str(root / "var" / "snap" / "microk8s" / "1234"),
        "SNAP_COMMON": str(root / "var" / "snap" / "microk8s" / "common"),
        "REAL_PATH": str(root / "host-bin"),
        "REAL_PYTHONPATH": "",
        "REAL_LD_LIBRARY_PATH": "",
        "PATH": f"{snap_dir}/usr/bin:{snap_dir}/bin:{root / 'host-bin'}",
        "PYTHONPATH": f"{snap_dir}/usr/lib/python3/dist-packages",
        "PYTHONHOME": SHIM_PYTHON_HOME,  # a value this interpreter can start with
        "LD_LIBRARY_PATH": f"{snap_dir}/lib:{snap_dir}/usr/lib",
        "FAKE_RECORD": str(root / "record.jsonl"),
    }
    return Snap(root=root, env=env)


@pytest.fixture
def host_runtime(snap: Snap) -> Path:
    return write_fake(snap.host_bin, "host")


# ------------------------------------------------------------------------------------ the files


@pytest.mark.parametrize("name", SHIM_FILES)
def test_shims_are_python310_stdlib(name: str) -> None:
    source = (ADDON_DIR / name).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 10))
    stdlib = set(sys.stdlib_module_names) | {"_shim", "__future__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] in stdlib, f"{name} imports {module}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_tiny_and_executable(hook: str) -> None:
    path = ADDON_DIR / hook
    assert os.access(path, os.X_OK)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env python3\n")
    assert f'_shim.main("{hook}", sys.argv[1:])' in text
    assert len(text.splitlines()) < 20


def test_interpreter_used() -> None:
    if PY310 is None:
        pytest.skip("no Python 3.10 here: the shims ran on python3 and were parsed as 3.10 above")
    assert subprocess.run([SHIM_PYTHON, "--version"], capture_output=True, text=True,
                          check=True).stdout.startswith("Python 3.10")


# ------------------------------------------------------------------------- handing over


ODD_ARGS = [
    "--domain", "knative.example.com",
    "--registry=10.0.0.1:32000",
    "--dns-server=[fd00::53]:53",
    "--host-ip", "fd00::1",
    "--label", "a b  c",
    "--set", "key=value=more",
    "--empty=", "",
    "--bundle=/tmp/with space/site.bundle",
    "--name=ünïcødé",
    "--shellish=$HOME;`id`|*",
]


@pytest.mark.parametrize("hook", HOOKS)
def test_arguments_are_handed_over_verbatim(snap: Snap, host_runtime: Path, hook: str) -> None:
    done = snap.run(hook, *ODD_ARGS)
    assert done.returncode == 0, done.stderr
    call = snap.last()
    assert call["tag"] == "host"
    assert call["argv"] == [hook, *ODD_ARGS]


def test_no_arguments(snap: Snap, host_runtime: Path) -> None:
    assert snap.run("enable").returncode == 0
    assert snap.last()["argv"] == ["enable"]


@pytest.mark.parametrize("code", [0, 3, 42])
@pytest.mark.parametrize("hook", HOOKS)
def test_exit_code_is_kept(snap: Snap, host_runtime: Path, hook: str, code: int) -> None:
    done = snap.run(hook, "--domain", "x", FAKE_EXIT=str(code))
    assert done.returncode == code
    assert snap.last()["argv"] == [hook, "--domain", "x"]


def test_killed_by_a_signal_is_128_plus_n(snap: Snap, host_runtime: Path) -> None:
    assert snap.run("enable", FAKE_SIGNAL="15").returncode == 128 + 15


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("args", [["--usage"], ["--domain", "x.example", "--usage"], ["help"]])
def test_usage_asks_the_runtime_for_help(snap: Snap, host_runtime: Path, hook: str, args: list[str]) -> None:
    done = snap.run(hook, *args)
    assert done.returncode == 0
    assert snap.last()["argv"] == [hook, "--help"]


def test_help_as_an_option_value_is_left_alone(snap: Snap, host_runtime: Path) -> None:
    snap.run("enable", "--name", "help")
    assert snap.last()["argv"] == ["enable", "--name", "help"]


def test_environment_is_the_hosts_with_snap_vars_kept(snap: Snap, host_runtime: Path) -> None:
    snap.run("enable", REAL_PYTHONPATH="/host/python", REAL_LD_LIBRARY_PATH="/host/lib")
    env = snap.last()["env"]
    assert env["PYTHONPATH"] == "/host/python"
    assert env["LD_LIBRARY_PATH"] == "/host/lib"
    assert env["PATH"] == snap.env["REAL_PATH"]
    assert "PYTHONHOME" not in env
    for name in ("SNAP", "SNAP_DATA", "SNAP_COMMON", "SNAP_NAME", "SNAP_REVISION", "SNAP_ARCH"):
        assert env[name] == snap.env[name]
    for name in ("SNAP", "SNAP_DATA", "SNAP_COMMON"):
        assert env[f"HYBRID_KNATIVE_MICROK8S_{name}"] == snap.env[name]
    assert env["HYBRID_KNATIVE_ADDON_REPO"] == str(REPO)
    assert snap.env["SNAP"] not in env["PYTHONPATH"] + env["LD_LIBRARY_PATH"] + env["PATH"]


def test_snap_python_paths_unset_when_host_had_none(snap: Snap, host_runtime: Path) -> None:
    snap.run("disable")  # REAL_PYTHONPATH and REAL_LD_LIBRARY_PATH are empty in the fixture
    env = snap.last()["env"]
    assert "PYTHONPATH" not in env
    assert "LD_LIBRARY_PATH" not in env


# ------------------------------------------------------------------------- finding the runtime


def test_runtime_inside_snap_is_ignored(snap: Snap) -> None:
    inside = write_fake(snap.snap / "usr" / "bin", "inside-snap")
    linked = snap.root / "linked-bin"
    linked.mkdir()
    (linked / "hybrid-knative").symlink_to(inside)  # a host folder, but the file is the snap's
    write_fake(snap.host_bin, "host")
    real_path = f"{snap.snap}/usr/bin:{linked}:{snap.host_bin}"
    assert snap.run("enable", REAL_PATH=real_path).returncode == 0
    assert snap.last()["tag"] == "host"


def test_path_is_used_without_real_path(snap: Snap) -> None:
    write_fake(snap.snap / "usr" / "bin", "inside-snap")
    write_fake(snap.host_bin, "host")
    assert snap.run("enable", REAL_PATH=None).returncode == 0  # PATH = $SNAP/usr/bin:…:host-bin
    assert snap.last()["tag"] == "host"


def test_override_wins(snap: Snap, host_runtime: Path) -> None:
    override = write_fake(snap.root / "elsewhere", "override")
    assert snap.run("enable", "--x", HYBRID_KNATIVE_BIN=str(override)).returncode == 0
    call = snap.last()
    assert (call["tag"], call["argv"]) == ("override", ["enable", "--x"])


def test_override_must_be_executable(snap: Snap, host_runtime: Path) -> None:
    bad = snap.root / "not-executable"
    bad.write_text("#!/bin/sh\n", encoding="utf-8")
    done = snap.run("enable", HYBRID_KNATIVE_BIN=str(bad))
    assert done.returncode == 1
    assert done.stderr.startswith(f"hybrid-knative: HYBRID_KNATIVE_BIN={bad} is not an executable file")
    assert snap.calls() == []


def test_no_runtime_and_no_snap_common(snap: Snap) -> None:
    done = snap.run("enable", SNAP_COMMON=None)
    assert done.returncode == 1
    assert "hybrid-knative: no hybrid-knative runtime found" in done.stderr
    assert INSTALL_HINT in done.stderr


# ------------------------------------------------------------------------- the bootstrapped venv


def repo_copy(root: Path, version: str, *, pyproject: str | None = None) -> Path:
    """The addon repo layout (shims + pyproject.toml + wheelhouse/) in a tmp folder."""
    repo = root / "repo"
    (repo / "addons" / "hybrid-knative").mkdir(parents=True)
    for name in SHIM_FILES:
        shutil.copy2(ADDON_DIR / name, repo / "addons" / "hybrid-knative" / name)
    (repo / "wheelhouse").mkdir()
    (repo / "pyproject.toml").write_text(pyproject or (
        "[build-system]\nrequires = [\"setuptools>=68\"]\nbuild-backend = \"setuptools.build_meta\"\n\n"
        f"[project]\nname = \"hybrid-knative\"\nversion = \"{version}\"\n"
    ), encoding="utf-8")
    return repo


DUMMY_RUNTIME = '''import json, os, sys

VERSION = "@VERSION@"


def main():
    with open(os.environ["FAKE_RECORD"], "a", encoding="utf-8") as out:
        out.write(json.dumps({"tag": "venv-" + VERSION, "argv": sys.argv[1:], "env": dict(os.environ),
                              "executable": sys.executable}) + "\\n")
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
'''


def build_dummy_wheel(wheelhouse: Path, version: str) -> Path:
    """A pure wheel `hybrid-knative==version` with a `hybrid-knative` console script, by hand."""
    dist_info = f"hybrid_knative-{version}.dist-info"
    files = {
        "hk_dummy_runtime.py": DUMMY_RUNTIME.replace("@VERSION@", version),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: hybrid-knative\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test_shims\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": "[console_scripts]\nhybrid-knative = hk_dummy_runtime:main\n",
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = wheelhouse / f"hybrid_knative-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


def test_venv_is_built_offline_once_and_rebuilt_for_a_new_version(snap: Snap) -> None:
    repo = repo_copy(snap.root, "9.9.9")
    build_dummy_wheel(repo / "wheelhouse", "9.9.9")
    venv = snap.common / "hybrid-knative" / "venv"

    first = snap.run("enable", "--domain", "a b:c", repo=repo, FAKE_EXIT="7")
    assert first.returncode == 7, first.stderr
    assert first.stderr.count(PREPARING) == 1
    call = snap.last()
    assert call["tag"] == "venv-9.9.9"
    assert call["argv"] == ["enable", "--domain", "a b:c"]
    assert Path(call["executable"]).parent == venv / "bin"
    assert "PYTHONPATH" not in call["env"]  # neither the snap's nor the host's in our own venv
    assert call["env"]["PATH"] == snap.env["REAL_PATH"]
    stamp = venv / "hybrid-knative-source.json"
    assert json.loads(stamp.read_text(encoding="utf-8"))["version"] == "9.9.9"
    assert not (venv / ".lent-pip").exists()
    before = (stamp.stat().st_mtime_ns, (venv / "bin" / "python").lstat().st_ino)

    second = snap.run("disable", "--usage", repo=repo)
    assert second.returncode == 0, second.stderr
    assert PREPARING not in second.stderr
    assert snap.last()["argv"] == ["disable", "--help"]
    assert (stamp.stat().st_mtime_ns, (venv / "bin" / "python").lstat().st_ino) == before

    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8").replace("9.9.9", "9.9.10"), encoding="utf-8")
    build_dummy_wheel(repo / "wheelhouse", "9.9.10")
    third = snap.run("enable", repo=repo)
    assert third.returncode == 0, third.stderr
    assert PREPARING in third.stderr
    assert snap.last()["tag"] == "venv-9.9.10"


def test_venv_failure_is_clear_and_leaves_nothing(snap: Snap) -> None:
    repo = repo_copy(snap.root, "0.0.1")  # empty wheelhouse: setuptools can't be had offline
    done = snap.run("enable", "--domain", "x", repo=repo)
    assert done.returncode == 1
    assert PREPARING in done.stderr
    assert "hybrid-knative: could not prepare the hybrid-knative runtime: `pip install` failed" in done.stderr
    assert f"offline, from {repo / 'wheelhouse'}" in done.stderr
    assert "setuptools" in done.stderr  # the tail of pip's output
    assert f"hybrid-knative: to fix: install the runtime with `{INSTALL_HINT}`" in done.stderr
    assert snap.calls() == []
    leftovers = {p.name for p in (snap.common / "hybrid-knative").iterdir()}
    assert leftovers <= {".venv.lock"}
    assert sorted(p.name for p in repo.iterdir()) == ["addons", "pyproject.toml", "wheelhouse"]


def test_venv_failure_without_pyproject(snap: Snap) -> None:
    repo = repo_copy(snap.root, "0.0.1")
    (repo / "pyproject.toml").unlink()
    done = snap.run("enable", repo=repo)
    assert done.returncode == 1
    assert "hybrid-knative: cannot read" in done.stderr and "pyproject.toml" in done.stderr


# ------------------------------------------------------------------ in-process: the module itself


@pytest.fixture
def shim(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in the addon folder
    spec = importlib.util.spec_from_file_location("_shim_under_test", ADDON_DIR / "_shim.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_repo_version_reads_the_project_table(shim: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.other]\nversion = "wrong"\n\n[project]\nname = "x"\nversion = "1.2.3"\n\n'
        '[tool.x]\nversion = "9"\n',
        encoding="utf-8",
    )
    assert shim.repo_version(tmp_path) == "1.2.3"
    assert shim.repo_version(REPO) != "unknown"


def test_venv_with_ensurepip_when_no_pip_to_lend(shim: ModuleType, snap: Snap,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repo_copy(snap.root, "1.0.0")
    build_dummy_wheel(repo / "wheelhouse", "1.0.0")
    monkeypatch.setattr(shim, "_pip_package_dir", lambda: None)
    runtime = shim.ensure_venv_runtime(snap.env, repo)
    venv = snap.common / "hybrid-knative" / "venv"
    assert runtime == str(venv / "bin" / "hybrid-knative")
    assert (venv / "bin" / "pip").exists()  # made by ensurepip
    done = subprocess.run([runtime, "enable", "--x"], env=shim.runtime_env(snap.env, own_venv=True),
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert snap.last()["argv"] == ["enable", "--x"]
