"""Through MicroK8s's own commands: `microk8s enable|disable hybrid-knative` as MicroK8s's dispatcher runs
them (tests/snap/fakes.py: the marker-driven short-circuit of scripts/wrappers/common/utils.py), the
addon repository's real shims, and the real `hybrid-knative` CLI against the API emulator.

enable → a half-way enable → `microk8s enable` (skipped: the addon counts as enabled) → `microk8s
disable` (runs, takes everything back) → `microk8s enable` (runs again, finishes) — the path
.github/workflows/e2e.yml walks on a real MicroK8s.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hybrid_knative.system import marker
from tests.integration.conftest import Cluster, make_cluster  # noqa: F401  (fixture)
from tests.snap.conftest import REPO, needs_git
from tests.snap.fakes import Fakes

pytestmark = needs_git
NAME = "hybrid-knative"


def microk8s(fakes: Fakes, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(fakes.bin / "microk8s"), *args], capture_output=True, text=True, timeout=300,
                          env=env, check=False)


@pytest.fixture
def setup(fakes: Fakes, addon_repo: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    fakes.update(microk8s={"channel": "1.35/stable"})
    done = subprocess.run([str(fakes.bin / "microk8s"), "addons", "repo", "add", NAME, str(addon_repo),
                           "--reference", "main"], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **fakes.env()})
    if done.returncode != 0:
        pytest.skip(f"cannot add the addon repository here: {done.stderr}")
    runtime = tmp_path / "hybrid-knative"  # the runtime the shim hands over to (a pip install, say)
    runtime.write_text(f"#!/bin/sh\nPYTHONPATH={REPO / 'src'} exec {sys.executable} -m hybrid_knative \"$@\"\n")
    runtime.chmod(0o755)
    env = {**os.environ, **fakes.env(), "HYBRID_KNATIVE_BIN": str(runtime)}
    return Path(fakes.read()["snap_data"]), env


def test_half_way_enable_then_microk8s_disable_then_enable(fakes: Fakes, setup: tuple[Path, dict[str, str]],
                                                         make_cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    snap_data, env = setup
    cluster = make_cluster()
    lock = snap_data / "var" / "lock"  # check_status: ${SNAP_DATA}/var/lock/hybrid-knative.enabled
    args = ["--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(lock), "--poll-interval", "0.001",
            "--offline", "--host-root", str(cluster.host_root), "--no-verify", "--gpu", "none", "--no-eventing"]
    check = lock / "hybrid-knative.enabled"

    cluster.controller.never_ready.add("3scale-kourier-gateway")
    failed = microk8s(fakes, "enable", NAME, *args, "--timeout", "1", env=env)
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert marker.read(check) == marker.INCOMPLETE
    assert cluster.server.get("v1", "namespaces", "knative-serving") is not None
    assert microk8s(fakes, "status", "--addon", NAME, env=env).stdout.strip() == "enabled"

    skipped = microk8s(fakes, "enable", NAME, *args, env=env)  # MicroK8s does not run our script now
    assert skipped.returncode == 0 and f"Addon {NAME}/{NAME} is already enabled" in skipped.stdout

    cluster.controller.never_ready.clear()
    gone = microk8s(fakes, "disable", NAME, *args[:4], env=env)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not check.exists()
    assert cluster.server.get("v1", "namespaces", "knative-serving") is None
    again = microk8s(fakes, "disable", NAME, *args[:4], env=env)
    assert f"Addon {NAME}/{NAME} is already disabled" in again.stdout

    done = microk8s(fakes, "enable", NAME, *args, "--timeout", "5", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.read(check) == marker.UNVERIFIED
    assert "hybrid-knative: Knative" in done.stdout
