"""Zero egress: `enable --bundle` succeeds inside a network namespace that has only loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_knative.airgap import bundle as bundle_mod
from tests.airgap.conftest import Containerd

pytestmark = pytest.mark.airgap
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    name = f"hk-airgap-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_enable_with_a_bundle_needs_no_network(made: Path, containerd: Containerd, netns: str, tmp_path: Path) -> None:
    routes = subprocess.run(["ip", "netns", "exec", netns, "ip", "-o", "route", "show"], capture_output=True,
                            text=True, check=True).stdout
    assert routes.strip() == ""  # nothing but loopback: any egress attempt would fail
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m", "tests.airgap.offline_enable",
                           str(made), str(tmp_path / "work"), str(containerd.socket)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "enabled knative 1.23" in proc.stdout
    assert "✓ Import the bundle's images" in proc.stderr
    names = containerd.images()
    for image in bundle_mod.read_manifest(made).images:
        assert image.name in names
