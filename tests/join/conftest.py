"""Fixtures for the cluster-join tests: a namespaced LAN, the emulator host, hub processes, devices."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.harness import sysfs
from tests.join.lan import Lan, available

REPO = Path(__file__).resolve().parents[2]
FAKE_BIN = Path(__file__).resolve().parent / "bin"
FAKE_MICROK8S = str(FAKE_BIN / "microk8s")
# The CLI under test (override only to debug: HK_JOIN_CLI="python -m some.module")
CLI = os.environ.get("HK_JOIN_CLI", f"{sys.executable} -m hybrid_knative").split()
HUB_IP = "10.77.0.1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/join/" in str(item.fspath):
            item.add_marker(pytest.mark.join)


class Proc:
    """A background process whose output lines are collected by a thread (bounded waits only)."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str]) -> None:
        self.argv = list(argv)
        self.popen = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline or (self.popen.poll() is not None and self._queue.empty()):
                raise AssertionError(f"{text!r} not printed by {self.argv[-8:]}; output:\n" + "\n".join(self.lines))
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def output(self) -> str:
        return "\n".join(self.lines)


def base_env(fake_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRID_KNATIVE_", "FAKE_"))}
    env.update({"FAKE_MK8S_DIR": str(fake_dir), "FAKE_MK8S_IPS": HUB_IP,
                "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra)
    return env


@dataclasses.dataclass
class World:
    lan: Lan
    root: Path
    fake_dir: Path
    kubeconfig: Path
    procs: list[Proc] = dataclasses.field(default_factory=list)

    # --- hub side ------------------------------------------------------------------------------

    def start_hub(self, state_dir: Path, *, port: int = 9443, host: str = "hub", extra: Sequence[str] = (),
                  name: str = "lab") -> Proc:
        ip = self.lan.hosts[host]
        argv = self.lan.cmd(host, [*CLI, "hub", "start", "--state-dir", str(state_dir), "--listen", ip,
                                   "--port", str(port), "--advertise", ip, "--cluster-name", name,
                                   "--kubeconfig", str(self.kubeconfig), "--microk8s", FAKE_MICROK8S,
                                   "--poll-interval", "0.05", "--rate", "200", "--burst", "400",
                                   "--max-per-source", "64",  # the 50-device swarm shares one address
                                   # a small token pool: 64 fake add-node processes per hub start cost the suite
                                   # minutes of CPU; the pool itself is tested in test_join_pool.py (extra may override)
                                   "--join-pool", "8",
                                   "--cluster-tokens-file", str(self.fake_dir / "credentials" / "cluster-tokens.txt"),
                                   *extra])
        proc = Proc(argv, env=base_env(self.fake_dir))
        self.procs.append(proc)
        proc.wait_for("hub listening")
        return proc

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*CLI, *args], env=base_env(self.fake_dir), cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def token(self, state_dir: Path, *args: str) -> str:
        return self.cli("token", "create", "--state-dir", str(state_dir), *args).stdout.strip().splitlines()[-1]

    def nodes(self) -> dict[str, dict[str, Any]]:
        path = self.fake_dir / "nodes.json"
        if not path.exists():
            return {}
        return {n["metadata"]["name"]: n for n in json.loads(path.read_text())}

    def wait_node(self, name: str, label: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.nodes().get(name)
            if node is not None and label in (node["metadata"].get("labels") or {}):
                return node
            time.sleep(0.05)
        raise AssertionError(f"node {name} never got label {label}: {self.nodes().get(name)}")

    def joins(self, node: str) -> list[str]:
        log = self.fake_dir / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split()[1] for line in lines if line.split()[0] == node]

    # --- device side ---------------------------------------------------------------------------

    def device_root(self, node: str, *, gpu: str = "none", memory_kb: int = 4_000_000) -> Path:
        root = self.root / "devices" / node
        if not root.exists():
            if gpu == "amd":
                sysfs.discrete_amd_gpu(root)
            else:
                sysfs.no_gpu(root)
            (root / "proc").mkdir(parents=True, exist_ok=True)
            (root / "proc" / "meminfo").write_text(f"MemTotal:       {memory_kb} kB\nMemFree:  1000 kB\n")
            (root / "etc").mkdir(parents=True, exist_ok=True)
            (root / "etc" / "machine-id").write_text(f"{abs(hash(node)):032x}"[-32:] + "\n")
        return root

    def device_argv(self, command: str, node: str, *args: str, host: str = "dev1") -> tuple[list[str], dict[str, str]]:
        root = self.device_root(node)
        argv = self.lan.cmd(host, [*CLI, command, *args, "--node-name", node, "--host-root", str(root),
                                   "--microk8s", FAKE_MICROK8S, "--backoff-initial", "0.05", "--backoff-max", "0.3",
                                   "--interface-address", self.lan.hosts[host]])
        env = base_env(self.fake_dir, FAKE_NODE_NAME=node,
                       HYBRID_KNATIVE_MICROK8S_SNAP_DATA=str(self.root / "devices" / node / "snap-data"))
        return argv, env

    def device(self, command: str, node: str, *args: str, host: str = "dev1",
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv, env = self.device_argv(command, node, *args, host=host)
        return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

    def device_background(self, command: str, node: str, *args: str, host: str = "dev1") -> Proc:
        argv, env = self.device_argv(command, node, *args, host=host)
        proc = Proc(argv, env=env)
        self.procs.append(proc)
        return proc


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = available()
    if reason is not None:
        pytest.skip(f"cluster-join tests need network namespaces: {reason}")
    root = tmp_path_factory.mktemp("join")
    fake_dir = root / "microk8s"
    fake_dir.mkdir()
    lan = Lan(f"hkj{os.getpid() % 100000}")
    procs: list[Proc] = []
    try:
        lan.add_host("hub", 1)
        lan.add_host("rogue", 2)
        lan.add_host("dev1", 11)
        lan.add_host("dev2", 12)
        emu = Proc(lan.cmd("hub", [sys.executable, "-m", "tests.join.emuhost", str(fake_dir)]),
                   env=base_env(fake_dir))
        procs.append(emu)
        emu.wait_for("ready", timeout=30)
        w = World(lan, root, fake_dir, fake_dir / "kubeconfig", procs)
        yield w
    finally:
        for proc in reversed(procs):
            if proc.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.popen.stdin.close()
            proc.stop()
        lan.close()


@pytest.fixture(scope="session")
def hub(world: World) -> Iterator[Path]:
    """The main hub (10.77.0.1:9443, cluster "lab"); yields its state folder."""
    state = world.root / "hub-state"
    proc = world.start_hub(state)
    yield state
    proc.stop()


@pytest.fixture
def make_root(tmp_path: Path) -> Callable[[str], Path]:
    def factory(name: str) -> Path:
        return tmp_path / name
    return factory
