"""Issue 11 item 4: a slowloris of 1,100 trickling connections from 20 addresses while 5 devices enrol.

The hub runs in its own process with systemd's fd limit (1024); attackers and devices use loopback
addresses of their own (127.0.0.2-21 and 127.0.0.1), so the hub sees 21 sources. Bounded: 1,100
sockets, at most ATTACK_SECONDS of attack, every wait has a deadline."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_knative.join.agent import DeviceFacts, HubClient
from hybrid_knative.join.enrolment import HubAddress
from hybrid_knative.join.pki import ensure_pki
from hybrid_knative.join.state import HubState
from hybrid_knative.system.gpu import GpuReport
from tests.harness.emulator import ApiServer
from tests.join.conftest import FAKE_MICROK8S, REPO

CONNECTIONS = 1100
SOURCES = [f"127.0.0.{i}" for i in range(2, 22)]
ATTACK_SECONDS = 40.0
DEVICES = 5


@pytest.fixture
def fd_hub(tmp_path: Path) -> Iterator[tuple[int, Path, str]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CONNECTIONS + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    with ApiServer() as api:
        state = tmp_path / "hub"
        fake = tmp_path / "mk8s"
        settings = {"state_dir": str(state), "cluster_name": "fd", "listen": "127.0.0.1", "port": 0,
                    "advertise": ["127.0.0.1"], "microk8s": FAKE_MICROK8S, "mdns": False, "rate": 50.0, "burst": 100,
                    "kubeconfig": str(api.write_kubeconfig(tmp_path / "kubeconfig")), "poll_interval": 0.2,
                    "cluster_tokens_file": str(fake / "credentials" / "cluster-tokens.txt")}
        (tmp_path / "settings.json").write_text(json.dumps(settings))
        env = {**os.environ, "FAKE_MK8S_DIR": str(fake), "FAKE_MK8S_IPS": "10.0.0.1",
               "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
        proc = subprocess.Popen([sys.executable, "-m", "tests.join.fdhub", str(tmp_path / "settings.json")], cwd=REPO,
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded: the process prints it or exits
            assert line.startswith("port "), (line, proc.stderr.read() if proc.poll() is not None else "")
            yield int(line.split()[1]), state, proc.pid and str(proc.pid)
        finally:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log = proc.stderr.read() if proc.stderr else ""
            assert "Traceback" not in log, log[-3000:]


class Slowloris:
    """Holds up to CONNECTIONS connections spread over SOURCES: each completes its TLS handshake, then
    trickles an HTTP request one byte per second (every read on the hub gets data in time, so a per-read
    timeout never fires). Connections the hub drops are reopened on the next round."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.open_now = 0
        self.attempted = 0  # connections tried (the first round alone tries all CONNECTIONS)
        self.opened = 0  # of which the hub completed the TLS handshake
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE

    def _connect(self, index: int) -> ssl.SSLSocket | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((SOURCES[index % len(SOURCES)], 0))
            sock.settimeout(2)
            sock.connect(("127.0.0.1", self.port))
            tls = self._ctx.wrap_socket(sock)
            tls.setblocking(False)
            return tls
        except OSError:
            sock.close()
            return None

    def _run(self) -> None:
        request = b"POST /v1/enrol HTTP/1.1\r\nHost: hub\r\n" + b"X-Slow: " + b"a" * 100_000
        slots: list[ssl.SSLSocket | None] = [None] * CONNECTIONS
        sent = [0] * CONNECTIONS
        deadline = time.monotonic() + ATTACK_SECONDS
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            try:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    round_end = time.monotonic() + 1.0
                    missing = [i for i, s in enumerate(slots) if s is None]
                    self.attempted += len(missing)
                    for i, tls in zip(missing, pool.map(self._connect, missing), strict=True):
                        if tls is not None:
                            slots[i], sent[i] = tls, 0
                            self.opened += 1
                    for i, tls in enumerate(slots):
                        if tls is None:
                            continue
                        try:
                            tls.send(request[sent[i]:sent[i] + 1])
                            sent[i] += 1
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                            pass
                        except OSError:
                            tls.close()
                            slots[i] = None
                            self.dropped += 1
                    self.open_now = sum(1 for s in slots if s is not None)
                    self.stop.wait(max(0.0, round_end - time.monotonic()))
            finally:
                for tls in slots:
                    if tls is not None:
                        with contextlib.suppress(OSError):
                            tls.close()

    def __enter__(self) -> Slowloris:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(ATTACK_SECONDS + 30)


def _enrol_one(port: int, fingerprint: str, token: object, index: int) -> str:
    facts = DeviceFacts(machine_id=f"{index:032x}", node_name=f"legit-{index}", arch="arm64", memory_mb=2048,
                        gpu=GpuReport("none", (), None, "no GPU"))
    deadline = time.monotonic() + 25
    last = "never tried"
    while time.monotonic() < deadline:  # a device retries like the agent does (bounded here)
        client = HubClient(HubAddress("127.0.0.1", port), fingerprint, timeout=5)
        try:
            client.prove_hub(token)  # type: ignore[arg-type]
            answer = client.enrol(token, facts)  # type: ignore[arg-type]
            return str(answer["enrolment"])
        except Exception as exc:  # collected for the assertion message
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    raise AssertionError(f"device {index} could not enrol: {last}")


def test_five_devices_enrol_during_a_slowloris_of_1100_connections(fd_hub: tuple[int, Path, str]) -> None:
    port, state_dir, _pid = fd_hub
    token = HubState(state_dir).create_token(ttl=3600, max_uses=DEVICES, labels={})
    fingerprint = ensure_pki(state_dir / "pki", cluster_name="fd").fingerprint
    with Slowloris(port) as attack:
        deadline = time.monotonic() + 20
        while attack.attempted < CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the hub is under full pressure now
        with concurrent.futures.ThreadPoolExecutor(max_workers=DEVICES) as pool:
            enrolments = list(pool.map(lambda i: _enrol_one(port, fingerprint, token, i), range(DEVICES)))
        assert attack.thread.is_alive()  # the attack was still going while they enrolled
    assert len(set(enrolments)) == DEVICES
    assert attack.attempted >= CONNECTIONS and attack.opened > 0
