"""Attacks on the device agent by a rogue hub (issue 11, items 9-11): a reply trickled forever, endless
``100 Continue``, deeply nested JSON before any trust exists, and hostile enrolment files."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import HybridError, PermanentError
from hybrid_knative.join import agent
from hybrid_knative.join.enrolment import Enrolment, HubAddress, Token
from hybrid_knative.join.pki import ensure_pki
from hybrid_knative.system.runner import Runner
from tests.join.conftest import FAKE_MICROK8S

TOKEN = Token("1" * 16, "2" * 40)
BOUND = 60.0  # safety net for a test that would otherwise hang forever; never a speed assertion


class RogueHub:
    """A TLS server on 127.0.0.1 that answers every request with ``behaviour(tls)``."""

    def __init__(self, tmp: Path, behaviour: Callable[[ssl.SSLSocket], None]) -> None:
        self.pki = ensure_pki(tmp / "rogue-pki", cluster_name="rogue", addresses=("127.0.0.1",))
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        ctx = self.pki.server_context()
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(ctx, conn), daemon=True).start()

    def _one(self, ctx: ssl.SSLContext, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(5)
            tls.recv(65536)  # the request (small)
            self.behaviour(tls)

    def until_stopped(self, tls: ssl.SSLSocket, data: bytes, pause: float) -> None:
        for _ in range(int(BOUND / pause) + 1):  # bounded: ends with the test at the latest
            if self.stop.is_set():
                return
            tls.sendall(data)
            time.sleep(pause)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def rogue(tmp_path: Path) -> Iterator[Callable[[Callable[[RogueHub, ssl.SSLSocket], None]], RogueHub]]:
    hubs: list[RogueHub] = []

    def make(behaviour: Callable[[RogueHub, ssl.SSLSocket], None]) -> RogueHub:
        hub: RogueHub
        hub = RogueHub(tmp_path / f"r{len(hubs)}", lambda tls: behaviour(hub, tls))
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


def _settings(tmp_path: Path, hub: RogueHub, timeout: float) -> agent.AgentSettings:
    root = tmp_path / "host"
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "meminfo").write_text("MemTotal: 2000000 kB\n")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "machine-id").write_text("c" * 32 + "\n")
    e = Enrolment(TOKEN, (HubAddress("127.0.0.1", hub.port),), hub.pki.fingerprint)
    return agent.AgentSettings(enrolment=e, snap=SnapPaths(snap_data=tmp_path / "snap-data"), microk8s=FAKE_MICROK8S,
                               host_root=root, node_name="victim", timeout=timeout,
                               backoff=agent.Backoff(initial=0.2, maximum=0.5))


def _run_bounded(settings: agent.AgentSettings, tmp_path: Path) -> BaseException | None:
    """Run the agent in a thread; return what it raised (None: it joined). Fails if it never ends."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            agent.run(settings, runner=Runner(env={**os.environ, "FAKE_MK8S_DIR": str(tmp_path / "mk8s")}))
            outcome.append(None)
        except BaseException as exc:  # what the agent raised is the result
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert outcome, "the agent was still running long past its --timeout"
    return outcome[0]


def test_a_trickled_reply_does_not_outlive_the_timeout(rogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def trickle(hub: RogueHub, tls: ssl.SSLSocket) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        hub.until_stopped(tls, b" ", 0.2)

    hub = rogue(trickle)
    error = _run_bounded(_settings(tmp_path, hub, timeout=3), tmp_path)
    assert isinstance(error, PermanentError) and "gave up" in error.brief, error


def test_endless_100_continue_does_not_outlive_the_timeout(rogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def continues(hub: RogueHub, tls: ssl.SSLSocket) -> None:
        hub.until_stopped(tls, b"HTTP/1.1 100 Continue\r\n\r\n", 0.05)

    hub = rogue(continues)
    error = _run_bounded(_settings(tmp_path, hub, timeout=3), tmp_path)
    assert isinstance(error, PermanentError) and "gave up" in error.brief, error


@pytest.mark.parametrize("body", [
    b'{"ca": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    b'{"ca": ' + b'{"a":' * 6000 + b"1" + b"}" * 6000 + b"}",
    b"[" * 30000,
    b'{"ca": "' + b"A" * 70000 + b'"}',
], ids=["nested-lists", "nested-objects", "unterminated", "oversized"])
def test_a_hostile_json_reply_never_crashes_the_agent(rogue, tmp_path: Path, body: bytes) -> None:  # type: ignore[no-untyped-def]
    def reply(hub: RogueHub, tls: ssl.SSLSocket) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body)

    hub = rogue(reply)
    error = _run_bounded(_settings(tmp_path, hub, timeout=2), tmp_path)
    assert isinstance(error, HybridError), repr(error)  # a clear error, never a RecursionError


def test_the_depth_check_is_exact_enough() -> None:
    assert agent.parse_reply(b'{"ca": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {"ca": "[" * 44}
    assert agent.parse_reply(json.dumps({"a": [[[[1]]]]}).encode()) == {"a": [[[[1]]]]}
    assert agent.parse_reply(b"[" * 40 + b"]" * 40) == {}


@pytest.mark.parametrize("source", ["/dev/zero", "big", "binary", "empty"])
def test_a_hostile_enrolment_file_is_refused_in_bounded_memory(tmp_path: Path, source: str) -> None:
    from hybrid_knative.cli.join import join

    files = {"big": b"hk1:" + b"a" * 5_000_000, "binary": bytes(range(256)) * 10, "empty": b""}
    path = Path(source) if source.startswith("/") else tmp_path / source
    if not source.startswith("/"):
        path.write_bytes(files[source])
    result = CliRunner().invoke(join, ["--enrolment-file", str(path), "--timeout", "5"])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Error" in result.output
