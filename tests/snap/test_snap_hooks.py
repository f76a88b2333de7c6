"""The snap's hooks (snap/hooks/*), run as snapd runs them: the real shell scripts and the real
$SNAP/bin/hk-python wrapper, SNAP/SNAP_DATA/SNAP_COMMON pointing at temporary folders, and a stub
`snapctl` (tests/snap/fakes.py) that keeps the configuration and the service states. pytest-testinfra
checks the files and modes the hooks leave behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

from tests.snap.fakes import Fakes

REPO = Path(__file__).resolve().parents[2]
# a well-formed enrolment string: token <16 hex>.<40 hex> @ hub address / CA fingerprint (64 hex)
ENROLMENT = "hk1:0123456789abcdef." + "a" * 40 + "@10.20.30.40:8443/" + "b" * 64
host = testinfra.get_host("local://")


@pytest.fixture
def snap_env(tmp_path: Path, fakes: Fakes) -> dict[str, str]:
    snap = tmp_path / "snap"
    (snap / "bin").mkdir(parents=True)
    shutil.copy2(REPO / "snap" / "local" / "hk-python", snap / "bin" / "hk-python")
    # the snapcraft layout: $SNAP/bin/python3 is the snap's venv Python (here: this interpreter)
    python3 = snap / "bin" / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python3.chmod(0o755)
    env = {**fakes.env(), "SNAP": str(snap), "SNAP_DATA": str(tmp_path / "data"),
           "SNAP_COMMON": str(tmp_path / "common"), "SNAP_NAME": "hybrid-knative",
           # a host PYTHONPATH (e.g. MicroK8s's): hk-python's -I keeps it out of the package's Python
           "PYTHONPATH": str(tmp_path / "shadow")}
    shadow = tmp_path / "shadow" / "hybrid_knative"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise SystemExit('the host PYTHONPATH leaked in')\n")
    for name in ("SNAP_DATA", "SNAP_COMMON"):
        Path(env[name]).mkdir()
    return env


def hook(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "snap" / "hooks" / name)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def snapctl_calls(fakes: Fakes) -> list[list[str]]:
    return [c[1:] for c in fakes.calls if c[0] == "snapctl" and c[1] in ("start", "stop")]


@pytest.mark.parametrize("name", ["install", "configure", "remove"])
def test_hooks_are_thin_executable_shell(name: str) -> None:
    path = REPO / "snap" / "hooks" / name
    f = host.file(str(path))
    assert f.is_file and f.mode & 0o111 == 0o111
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == [f'exec "$SNAP/bin/hk-python" hybrid_knative.snaphooks {name}']


def test_install_hook_creates_private_folders(snap_env: dict[str, str]) -> None:
    done = hook("install", snap_env)
    assert done.returncode == 0, done.stderr
    for sub in ("join", "hub"):
        folder = host.file(f"{snap_env['SNAP_COMMON']}/{sub}")
        assert folder.is_directory and folder.mode == 0o700


def test_configure_without_options_keeps_daemons_off(snap_env: dict[str, str], fakes: Fakes) -> None:
    done = hook("configure", snap_env)
    assert done.returncode == 0, done.stderr
    assert snapctl_calls(fakes) == [["stop", "--disable", "hybrid-knative.agent"],
                                    ["stop", "--disable", "hybrid-knative.hub"]]
    assert not host.file(f"{snap_env['SNAP_COMMON']}/join/enrolment").exists


def test_join_token_starts_the_agent_and_unset_stops_it(snap_env: dict[str, str], fakes: Fakes) -> None:
    fakes.update(config={"join": {"token": ENROLMENT}, "hub": {"enabled": True}})
    done = hook("configure", snap_env)
    assert done.returncode == 0, done.stderr
    assert snapctl_calls(fakes) == [["start", "--enable", "hybrid-knative.agent"],
                                    ["start", "--enable", "hybrid-knative.hub"]]
    services = fakes.read()["services"]
    assert services["hybrid-knative.agent"] == {"enabled": True, "active": True}
    stored = host.file(f"{snap_env['SNAP_COMMON']}/join/enrolment")
    assert stored.is_file and stored.mode == 0o600 and stored.content_string == ENROLMENT + "\n"
    assert host.file(f"{snap_env['SNAP_COMMON']}/join").mode == 0o700
    assert ENROLMENT not in done.stdout + done.stderr  # no secret in the hook's output

    fakes.update(config={"hub": {"enabled": "false"}})  # `snap unset hybrid-knative join.token`
    done = hook("configure", snap_env)
    assert done.returncode == 0, done.stderr
    services = fakes.read()["services"]
    assert services["hybrid-knative.agent"] == {"enabled": False, "active": False}
    assert services["hybrid-knative.hub"] == {"enabled": False, "active": False}
    assert not stored.exists


@pytest.mark.parametrize(("config", "message"), [
    ({"join": {"token": "hk1:garbage"}}, "join.token is invalid"),
    ({"join": {"token": "not-a-token"}}, "join.token is invalid: not an enrolment string"),
    ({"join": {"token": 42}}, "join.token must be an enrolment string"),
    ({"join": {"tokn": ENROLMENT}}, "unknown option join.tokn"),
    ({"join": "x"}, "join must be a group of options"),
    ({"hub": {"enabled": "yes please"}}, "hub.enabled must be true or false"),
])
def test_bad_values_are_rejected_and_nothing_changes(snap_env: dict[str, str], fakes: Fakes,
                                                     config: dict[str, object], message: str) -> None:
    fakes.update(config=config)
    done = hook("configure", snap_env)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert snapctl_calls(fakes) == []
    assert not host.file(f"{snap_env['SNAP_COMMON']}/join").exists


def test_secret_never_echoed_when_rejected(snap_env: dict[str, str], fakes: Fakes) -> None:
    secret = "hk1:0123456789abcdef." + "c" * 40 + "@10.20.30.40:8443/" + "d" * 10  # bad fingerprint
    fakes.update(config={"join": {"token": secret}})
    done = hook("configure", snap_env)
    assert done.returncode != 0 and "join.token is invalid" in done.stderr
    assert "c" * 40 not in done.stderr + done.stdout


def test_remove_hook_deletes_the_secret(snap_env: dict[str, str], fakes: Fakes) -> None:
    fakes.update(config={"join": {"token": ENROLMENT}})
    assert hook("configure", snap_env).returncode == 0
    assert host.file(f"{snap_env['SNAP_COMMON']}/join/enrolment").exists
    done = hook("remove", snap_env)
    assert done.returncode == 0, done.stderr
    assert not host.file(f"{snap_env['SNAP_COMMON']}/join/enrolment").exists


def test_hook_outside_snapd_explains(snap_env: dict[str, str]) -> None:
    env = dict(snap_env)
    done = subprocess.run([sys.executable, "-m", "hybrid_knative.snaphooks", "configure"],
                          env={k: v for k, v in {**os.environ, **env}.items() if k not in ("SNAP_DATA", "PYTHONPATH",
                                                                                            "PYTHONHOME")},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "SNAP_DATA not set: snap hooks run only under snapd" in done.stderr
    done = subprocess.run([sys.executable, "-m", "hybrid_knative.snaphooks", "bogus"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and "usage:" in done.stderr
