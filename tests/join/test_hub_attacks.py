"""Attacks on the join hub by a token holder or a LAN attacker (issue 11, items 1-8), each written as what
the attacker sends and what must not happen. In-process hub on 127.0.0.1 with real TLS, the fake
`microk8s` (MicroK8s's own token file format) and the Kubernetes API emulator."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_knative.join import hub as hub_mod
from hybrid_knative.join.hub import LABEL_ENROLMENT, Hub, HubSettings, RunningHub, serve
from hybrid_knative.join.state import HubState
from hybrid_knative.system.gpu import GpuReport
from hybrid_knative.system.runner import Runner
from tests.harness.emulator import ApiServer
from tests.join.conftest import FAKE_MICROK8S

GPU_NONE = GpuReport("none", (), None, "no GPU").to_dict()


def device(name: str, machine: str = "ab", **extra: Any) -> dict[str, Any]:
    return {"machine_id": (machine * 32)[:32], "node_name": name, "arch": "arm64", "memory_mb": 2048,
            "gpu": GPU_NONE, **extra}


class Env:
    def __init__(self, root: Path, api: ApiServer) -> None:
        self.root, self.api = root, api
        self.fake = root / "mk8s"
        self.tokens_file = self.fake / "credentials" / "cluster-tokens.txt"
        self.kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        self.env = {**os.environ, "FAKE_MK8S_DIR": str(self.fake), "FAKE_MK8S_IPS": "10.0.0.1"}
        self.hubs: list[RunningHub] = []

    def settings(self, name: str, **extra: Any) -> HubSettings:
        values: dict[str, Any] = {
            "state_dir": self.root / name, "cluster_name": "atk", "listen": "127.0.0.1", "port": 0,
            "advertise": ("127.0.0.1",), "microk8s": FAKE_MICROK8S, "mdns": False, "rate": 10_000.0,
            "burst": 100_000, "kubeconfig": self.kubeconfig, "poll_interval": 0.05,
            "cluster_tokens_file": self.tokens_file, "pool_size": 8}  # small: see conftest.start_hub
        values.update(extra)
        known = {f.name for f in dataclasses.fields(HubSettings)}  # (also runs against older hubs, to see them fail)
        return HubSettings(**{k: v for k, v in values.items() if k in known})

    def hub(self, name: str, clock: Callable[[], float] = time.time, **extra: Any) -> RunningHub:
        running = serve(Hub(self.settings(name, **extra), runner=Runner(env=self.env), clock=clock))
        self.hubs.append(running)
        return running

    def cluster_tokens(self) -> list[str]:
        return self.tokens_file.read_text().splitlines() if self.tokens_file.exists() else []

    def handed_tokens(self, hub: RunningHub) -> set[str]:
        """MicroK8s join tokens that left the hub: in MicroK8s's file, and not (any more) in the hub's pool of
        tokens created ahead (after a retire pass, which removes the ones the pool discarded)."""
        hub.hub.retire_join_tokens()
        lines = self.cluster_tokens()
        live = hub.hub.pool.live()
        return {line for line in lines if hashlib.sha256(line.split("|")[0].encode()).hexdigest() not in live}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with ApiServer() as api:
        e = Env(tmp_path, api)
        try:
            yield e
        finally:
            for hub in e.hubs:
                hub.close()


def _ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def post(hub: RunningHub, path: str, payload: Any, *, source: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection("127.0.0.1", hub.port, context=_ctx(), timeout=20,
                                       source_address=(source, 0))
    try:
        conn.request("POST", path, body=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def enrol(hub: RunningHub, token: Any, dev: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return post(hub, "/v1/enrol", {"token": str(token), "device": dev})


def raw_request(port: int, data: bytes, *, read_timeout: float = 10) -> bytes:
    """Send exactly ``data`` over TLS; return what the hub answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock, \
            _ctx().wrap_socket(sock) as tls:
        tls.sendall(data)
        out = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(65536):
                out += chunk
        return out


# --- 1. a device may only ever label the Node its own join created -----------------------------------------


def test_a_token_holder_cannot_relabel_an_existing_node(env: Env) -> None:
    env.api.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "control-plane", "labels": {"amd.com/gpu.present": "true", "hybrid-knative.io/gpu": "amd"}}})
    hub = env.hub("relabel")
    token = hub.hub.state.create_token(ttl=3600, max_uses=5, labels={})
    code, body = enrol(hub, token, device("control-plane"))
    assert code == 409 and "join_urls" not in body, body
    assert env.handed_tokens(hub) == set()  # no join URL left the hub (its pool of unsent tokens aside)
    time.sleep(0.3)  # several watcher polls: nothing may label it
    labels = env.api.get("v1", "nodes", "control-plane")["metadata"]["labels"]
    assert labels == {"amd.com/gpu.present": "true", "hybrid-knative.io/gpu": "amd"}
    assert any(r.get("reason") == "node-exists" for r in hub.hub.state.audit_records())


def test_a_node_older_than_the_join_url_is_never_labelled(env: Env) -> None:
    hub = env.hub("older")
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={})
    code, body = enrol(hub, token, device("racer"))
    assert code == 200
    # someone registers a Node of that name "before" the join URL was issued (the race the enrol check cannot see)
    with hub.hub.state.transaction() as data:
        data["enrolments"][body["enrolment"]]["issued_at"] = time.time() + 3600
    env.api.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": "racer", "labels": {"keep": "me"}}})
    info = hub.hub.state.enrolment(body["enrolment"])
    assert info is not None
    with pytest.raises(hub_mod.NodeIdentityError):
        hub.hub._label(info.enrolment_id, "racer", info.labels, info.annotations)
    assert env.api.get("v1", "nodes", "racer")["metadata"]["labels"] == {"keep": "me"}


def test_the_node_the_join_created_is_labelled(env: Env) -> None:
    hub = env.hub("good")
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={"site": "lab"})
    code, body = enrol(hub, token, device("fresh"))
    assert code == 200
    env.api.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fresh"}})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        labels = env.api.get("v1", "nodes", "fresh")["metadata"].get("labels") or {}
        if labels.get(LABEL_ENROLMENT) == body["enrolment"]:
            break
        time.sleep(0.05)
    assert labels.get("site") == "lab"
    record = hub.hub.state.read()["enrolments"][body["enrolment"]]
    assert record["node_uid"] == env.api.get("v1", "nodes", "fresh")["metadata"]["uid"]


# --- 2. --uses bounds how many machines join: single-use, counted join URLs -----------------------------


def test_replaying_a_single_use_token_does_not_mint_join_urls(env: Env) -> None:
    hub = env.hub("replay")
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={})
    dev = device("replayer")
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: enrol(hub, token, dev), range(50)))
    urls = {u for code, body in results if code == 200 for u in body["join_urls"]}
    assert 1 <= len(urls) <= 3, len(urls)  # a few retries of a failed `microk8s join`, never 50
    assert env.handed_tokens(hub) == {url.split("/")[1] for url in urls}  # the rest never left the hub's pool
    assert all("|" not in line for line in env.cluster_tokens())  # MicroK8s: only `--token-ttl -1` is single use
    assert {code for code, _ in results} <= {200, 409}
    # another machine with the same token: refused (the one use is spent)
    assert enrol(hub, token, device("second", machine="cd"))[0] == 403


def test_one_join_url_joins_one_node(env: Env, tmp_path: Path) -> None:
    hub = env.hub("once")
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={})
    code, body = enrol(hub, token, device("onlyone"))
    assert code == 200
    url = body["join_urls"][0]
    outcomes = []
    for node in ("onlyone", "thief-1", "thief-2"):
        run_env = {**env.env, "FAKE_NODE_NAME": node, "HYBRID_KNATIVE_MICROK8S_SNAP_DATA": str(tmp_path / node)}
        outcomes.append(subprocess.run([FAKE_MICROK8S, "join", url, "--worker"], env=run_env, capture_output=True,
                                       timeout=30).returncode)
    assert outcomes == [0, 1, 1]


def test_unused_join_urls_are_retired(env: Env) -> None:
    now = [time.time()]
    hub = env.hub("retire", clock=lambda: now[0], add_node_ttl=60)
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={})
    code, body = enrol(hub, token, device("slowpoke"))
    assert code == 200
    handed = body["join_urls"][0].split("/")[1]
    (env.fake / "credentials" / "cluster-tokens.txt").open("a").write("operator-token-kept|9999999999\n")
    assert hub.hub.retire_join_tokens() == 0  # still young
    assert handed in env.cluster_tokens()
    now[0] += 61
    hub.hub.retire_join_tokens()  # (the hub's own background passes may have been first)
    left = env.cluster_tokens()
    assert handed not in left
    # other tokens untouched; the rest are tokens the pool created after the clock moved, still unsent
    assert env.handed_tokens(hub) == {"operator-token-kept|9999999999"}


# --- 3. approval binds machine id, node name and facts ----------------------------------------------------


def test_approval_cannot_be_reused_for_another_node_name_or_other_facts(env: Env) -> None:
    hub = env.hub("approval")
    token = hub.hub.state.create_token(ttl=3600, max_uses=1, labels={}, approval=True)
    code, body = enrol(hub, token, device("innocent-pi", machine="12"))
    assert code == 202
    hub.hub.state.approve(body["enrolment"])
    amd = GpuReport("amd", (), None, "pretend").to_dict()
    for evil in (device("control-plane", machine="12"), device("innocent-pi", machine="12", gpu=amd),
                 device("innocent-pi", machine="12", arch="amd64")):
        code, answer = enrol(hub, token, evil)
        assert code == 409 and "join_urls" not in answer, (evil, answer)
    assert [e.node_name for e in hub.hub.state.enrolments()] == ["innocent-pi"]
    code, answer = enrol(hub, token, device("innocent-pi", machine="12"))
    assert code == 200 and answer["node_name"] == "innocent-pi"


# --- 5. strict headers, no tracebacks from unauthenticated input --------------------------------------------


@pytest.fixture
def strict_hub(env: Env) -> RunningHub:
    return env.hub("strict", handshake_timeout=1.0)


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("length", ["²", "٣", "1e3", "-1", " 5 5", "0x10", "99999999999", "5,5"])
def test_malformed_content_length_is_a_400(strict_hub: RunningHub, caplog: pytest.LogCaptureFixture,
                                           length: str) -> None:
    caplog.set_level(logging.DEBUG)
    request = (f"POST /v1/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {length}\r\n\r\n{{}}").encode()
    answer = raw_request(strict_hub.port, request)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), answer[:80]
    _no_tracebacks(caplog)


def test_a_short_body_is_dropped_without_a_traceback(strict_hub: RunningHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    request = b"POST /v1/enrol HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}"
    answer = raw_request(strict_hub.port, request, read_timeout=15)
    assert not answer.startswith(b"HTTP/1.1 503"), answer[:80]
    _no_tracebacks(caplog)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
       .filter(lambda t: re.fullmatch(r"[ \t]*[0-9]+[ \t]*", t) is None),
       extra=st.sampled_from([b"", b"{}", b"{\"token_id\": 1}"]))
def test_fuzz_content_length(strict_hub: RunningHub, caplog: pytest.LogCaptureFixture, length: str,
                             extra: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    head = f"POST /v1/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    answer = raw_request(strict_hub.port, head.encode("utf-8") + extra)
    assert answer == b"" or answer[9:10] == b"4", answer[:80]  # a 4xx, or the connection is dropped
    _no_tracebacks(caplog)


# --- 7. a flood of refusals cannot wipe the audit log -------------------------------------------------------


def test_a_429_flood_does_not_touch_the_audit_log(env: Env) -> None:
    hub = env.hub("flood", rate=0.01, burst=1)
    state = hub.hub.state
    token = state.create_token(ttl=3600, max_uses=1, labels={})
    before = state.audit_path.read_text()
    codes = [post(hub, "/v1/hello", {"token_id": "0" * 16, "nonce": "a" * 32})[0] for _ in range(200)]
    assert codes.count(429) >= 199
    assert state.audit_path.read_text() == before  # the history (token-created…) is untouched
    hub.hub.stop()  # flushes the aggregate
    noise = state.noise_records()
    assert sum(r["totals"].get("rate-limited", 0) for r in noise) == codes.count(429)
    assert len(noise) <= 2
    assert token.token_id in state.audit_path.read_text()


# --- 8. smaller leaks ----------------------------------------------------------------------------------------


def test_the_hello_for_an_unknown_id_survives_a_restart(env: Env) -> None:
    body = {"token_id": "0123456789abcdef", "nonce": "c" * 32}
    first = Hub(env.settings("restart"), runner=Runner(env=env.env)).hello(body).body["proof"]
    second = Hub(env.settings("restart"), runner=Runner(env=env.env)).hello(body).body["proof"]
    assert first == second


def test_the_state_folder_is_private_under_umask_000(env: Env) -> None:
    old = os.umask(0)
    try:
        hub = Hub(env.settings("umask" + "/nested"), runner=Runner(env=env.env))
        hub.state.create_token(ttl=60, max_uses=1, labels={})
    finally:
        os.umask(old)
    for folder in (env.root / "umask" / "nested", env.root / "umask" / "nested" / "pki"):
        assert folder.stat().st_mode & 0o077 == 0, oct(folder.stat().st_mode)


def test_a_failed_launch_config_leaks_nothing_and_leaves_no_token(tmp_path: Path) -> None:
    from hybrid_knative.cli.join import token

    broken = tmp_path / "microk8s"
    broken.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    broken.chmod(0o755)
    result = CliRunner().invoke(token, ["create", "--state-dir", str(tmp_path / "hub"), "--hub", "10.0.0.7:9443",
                                        "--launch-config", str(tmp_path / "lc.yaml"), "--microk8s", str(broken)])
    assert result.exit_code != 0
    assert "--token" not in result.output and "Traceback" not in result.output, result.output
    assert HubState(tmp_path / "hub").tokens() == []
    assert not (tmp_path / "lc.yaml").exists()


def test_replies_go_out_in_one_write(env: Env) -> None:
    """Headers and body in one segment (two small writes stall ~40 ms on Nagle + delayed ACK)."""
    hub = env.hub("nagle")
    writes: list[int] = []
    lock = threading.Lock()
    real = ssl.SSLSocket.sendall

    def counting(self: ssl.SSLSocket, data: Any, flags: int = 0) -> None:
        if self.server_side:
            with lock:
                writes.append(len(data))
        real(self, data, flags)

    ssl.SSLSocket.sendall = counting  # type: ignore[method-assign]
    real_write = ssl.SSLSocket.write

    def counting_write(self: ssl.SSLSocket, data: Any) -> int:
        if self.server_side:
            with lock:
                writes.append(len(data))
        return real_write(self, data)

    ssl.SSLSocket.write = counting_write  # type: ignore[method-assign]
    try:
        assert post(hub, "/v1/hello", {"token_id": "0" * 16, "nonce": "a" * 32})[0] == 200
    finally:
        ssl.SSLSocket.sendall = real  # type: ignore[method-assign]
        ssl.SSLSocket.write = real_write  # type: ignore[method-assign]
    assert len(writes) == 1, writes
