"""A private network namespace with the bridge and its peers, each a separate process inside it.

Nothing listens in the root namespace: DDS (multicast on the namespace's loopback) and every HTTP
server live inside ``hkros2-<pid>-<n>``; the test talks to them only through processes started with
``ip netns exec`` (``World.http``) and through files they write. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_COUNTER = itertools.count()
DDS_ON_LOOPBACK = (
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface name=\"lo\" multicast=\"true\"/></Interfaces>"
    "<AllowMulticast>true</AllowMulticast></General></Domain></CycloneDDS>"
)


def netns_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def free_port() -> int:
    # ports are chosen in the root namespace but only ever bound inside the test's own namespace
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ns = f"hkros2-{os.getpid()}-{next(_COUNTER)}"
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True, timeout=20)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=20)
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CYCLONEDDS", "ROS_", "HK_"))},
                    "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "CYCLONEDDS_URI": DDS_ON_LOOPBACK}

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *args]

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - closed with the process in close()
        proc = subprocess.Popen(self.argv(args), env=self.env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        fh.close()
        self.procs.append((proc, log))
        return proc

    def python(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, *args])

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv([sys.executable, *args]), env=self.env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- peers ------------------------------------------------------------------------------------

    def bridge(self, config: dict[str, Any], *, broker_url: str, port: int, name: str = "detect-ros2",
               extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = self.python(name, "-m", "hybrid_knative", "ros2", "bridge", "--config", str(path), "--name", name,
                           "--broker-url", broker_url, "--listen", f"127.0.0.1:{port}", "-v", *extra)
        wait_until(lambda: proc.poll() is not None or "sink http" in self.log(name), 20, f"bridge {name} to start")
        assert proc.poll() is None, self.log(name)
        return proc

    def broker(self, triggers: list[dict[str, Any]], refs: dict[str, str], *, port: int, function_port: int,
               path: str = "/default/default", **extra: Any) -> Path:
        log = self.tmp / f"broker-{port}.jsonl"
        cfg = {"port": port, "function_port": function_port, "path": path, "triggers": triggers, "refs": refs,
               "log": str(log), **extra}
        cfg_path = self.tmp / f"broker-{port}.json"
        cfg_path.write_text(json.dumps(cfg))
        self.python(f"broker-{port}", "-m", "tests.ros2.peers", "broker", str(cfg_path))
        wait_until(lambda: Path(str(log) + ".ready").exists(), 20, "the broker stand-in")
        return log

    def subscriber(self, topic: str, msg_type: str, count: int) -> Path:
        out = self.tmp / f"sub-{topic.strip('/').replace('/', '_')}.jsonl"
        self.python(f"sub-{topic.strip('/')}", "-m", "tests.ros2.peers", "sub", topic, msg_type, str(count), str(out))
        wait_until(lambda: Path(str(out) + ".ready").exists(), 20, "the subscriber")
        return out

    def publish(self, messages: list[dict[str, Any]], **plan: Any) -> list[dict[str, Any]]:
        path = self.tmp / f"pub-{next(_COUNTER)}.json"
        path.write_text(json.dumps({"messages": messages, **plan}))
        done = self.run("-m", "tests.ros2.peers", "pub", str(path), timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def http(self, *requests: dict[str, Any]) -> list[tuple[int, bytes]]:
        path = self.tmp / f"http-{next(_COUNTER)}.json"
        reqs = [{**r, "body_b64": base64.b64encode(r.get("body", b"")).decode()} for r in requests]
        for r in reqs:
            r.pop("body", None)
        path.write_text(json.dumps(reqs))
        done = self.run("-m", "tests.ros2.peers", "http", str(path))
        assert done.returncode == 0, done.stderr
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        return [(a["status"], base64.b64decode(a["body_b64"])) for a in answers]

    def metrics(self, port: int) -> dict[str, Any]:
        [(status, body)] = self.http({"method": "GET", "url": f"http://127.0.0.1:{port}/metrics"})
        assert status == 200, body
        return dict(json.loads(body))

    def close(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()
