"""`python -m tests.harness.serve` (`make emulator`) as a user runs it: a subprocess that serves a fresh
MicroK8s node's API on 127.0.0.1, writes a 0600 kubeconfig, and stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import lightkube
import pytest
from click.testing import CliRunner
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Service

from hybrid_knative.cli.main import cli
from tests.harness.emulator.microk8s import CLUSTER_DNS_IP, STOCK_COREFILE

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class Served:
    def __init__(self, proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        self.proc = proc
        self.lines = lines
        self.output: list[str] = []

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s: {self.output}") from None
            if line is None:
                raise AssertionError(f"the emulator exited ({self.proc.poll()}): {self.output}")
            self.output.append(line)
            if m := re.search(pattern, line):
                return m


def start(*args: str) -> Served:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-m", "tests.harness.serve", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return Served(proc, lines)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    kubeconfig = tmp_path / "emu" / "kubeconfig"
    proc = start("--kubeconfig", str(kubeconfig))
    try:
        yield proc, kubeconfig
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(STOP_TIMEOUT)


def test_serves_a_fresh_microk8s_node_until_sigterm(served: tuple[Served, Path]) -> None:
    proc, kubeconfig = served
    url = proc.wait_for(r"serving at (http://127\.0\.0\.1:\d+)").group(1)
    proc.wait_for(r"kubeconfig: ")
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = lightkube.KubeConfig.from_file(kubeconfig)
    assert config.get().cluster.server == url
    client = lightkube.Client(config=config)
    try:
        assert [n.metadata.name for n in client.list(Node)] == ["node-1"]
        assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= {
            n.metadata.name for n in client.list(Namespace)}
        assert client.get(ConfigMap, "coredns", namespace="kube-system").data == {"Corefile": STOCK_COREFILE}
        assert client.get(Service, "kube-dns", namespace="kube-system").spec.clusterIP == CLUSTER_DNS_IP
        coredns = client.get(Deployment, "coredns", namespace="kube-system")
        assert {c.type: c.status for c in coredns.status.conditions}["Available"] == "True"
    finally:
        client.close()
    result = CliRunner().invoke(cli, ["status", "--kubeconfig", str(kubeconfig), "--state-dir",
                                      str(kubeconfig.parent / "state")])
    assert result.exit_code == 3 and "enabled: no" in result.output, result.output  # reached, nothing installed
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(STOP_TIMEOUT) == 0
    proc.wait_for("serve: stopping")


def test_sigint_stops_it_cleanly(served: tuple[Served, Path]) -> None:
    proc, _ = served
    proc.wait_for(r"Press Ctrl-C")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(STOP_TIMEOUT) == 0
    assert not any("Traceback" in line for line in proc.output)


def test_bad_port_is_a_clear_error(tmp_path: Path) -> None:
    proc = start("--kubeconfig", str(tmp_path / "kc"), "--port", "70000")
    assert proc.proc.wait(STOP_TIMEOUT) == 2
    output = "\n".join(iter(lambda: proc.lines.get(timeout=STOP_TIMEOUT), None))
    assert "a port is 0-65535" in output and "Traceback" not in output
    assert not (tmp_path / "kc").exists()
