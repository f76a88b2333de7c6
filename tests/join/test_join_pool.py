"""The hub's pool of pre-created MicroK8s join tokens, one write per enrolment, and crash safety.

The pool itself is exercised with a recording ``create`` (what `add-node` would do) and a fake clock;
the hub with the strict fake `microk8s` (MicroK8s's own options and token file), the Kubernetes API
emulator and real TLS where it matters. No timing asserts: waits are bounded and only wait for states.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.join import hub as hub_mod
from hybrid_knative.join.enrolment import Token
from hybrid_knative.join.hub import Hub, HubSettings, RunningHub, serve
from hybrid_knative.join.pool import JoinToken, JoinTokenPool, Ledger, SharedLock, token_sha256
from hybrid_knative.system.gpu import GpuReport
from hybrid_knative.system.runner import Runner
from tests.harness.emulator import ApiServer
from tests.join.conftest import FAKE_MICROK8S

REPO = Path(__file__).resolve().parents[2]
GPU_NONE = GpuReport("none", (), None, "no GPU").to_dict()


def device(name: str, machine: str) -> dict[str, Any]:
    return {"machine_id": hashlib.md5(machine.encode()).hexdigest(), "node_name": name, "arch": "arm64",
            "memory_mb": 2048, "gpu": GPU_NONE}


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# --- the pool on its own ------------------------------------------------------------------------------------


class Maker:
    """What `microk8s add-node --token T` does, recorded: every token it was asked to create."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.fail = False
        self._lock = threading.Lock()

    def __call__(self, secret: str) -> list[str] | None:
        with self._lock:
            if self.fail:
                return None
            self.tokens.append(secret)
        return [f"10.0.0.1:25000/{secret}/abcdef012345"]


def make_pool(tmp_path: Path, *, size: int = 4, clock: Callable[[], float] = time.time,
              maker: Maker | None = None) -> tuple[JoinTokenPool, Maker]:
    maker = maker or Maker()
    pool = JoinTokenPool(size=size, ttl=600, margin=180, create=maker, ledger=Ledger(tmp_path / "ledger.jsonl"),
                         lock=SharedLock(), clock=clock)
    return pool, maker


def test_each_token_is_handed_out_at_most_once(tmp_path: Path) -> None:
    pool, maker = make_pool(tmp_path, size=8)
    assert pool.fill() == 8
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        taken = list(ex.map(lambda _: pool.take(), range(16)))
    handed = [t for t in taken if t is not None]
    assert len(handed) == 8 and taken.count(None) == 8  # the pool held 8; the rest must fall back
    assert len({t.secret for t in handed}) == 8
    assert sorted(t.secret for t in handed) == sorted(maker.tokens)
    # the fallback creates a new one for each request; none is ever one of those already handed
    extra = [pool.create_now() for _ in range(3)]
    assert all(t is not None for t in extra)
    assert len({t.secret for t in handed} | {t.secret for t in extra if t is not None}) == 11
    # a token given back (never sent) is handed again exactly once; a settled one never
    pool.settled(handed[0])
    pool.give_back(handed[1])
    again = pool.take()
    assert again is not None and again.secret == handed[1].secret
    assert pool.take() is None
    # the ledger knows every token's hash (never a secret)
    ledger = (tmp_path / "ledger.jsonl").read_text()
    assert all(token_sha256(s) in ledger and s not in ledger for s in maker.tokens)
    assert (tmp_path / "ledger.jsonl").stat().st_mode & 0o077 == 0


def test_expired_tokens_are_never_handed_out(tmp_path: Path) -> None:
    now = [1000.0]
    pool, _ = make_pool(tmp_path, size=3, clock=lambda: now[0])
    pool.fill()
    young = pool.take()
    assert young is not None
    now[0] += 600 - 180  # ttl - margin: too old to leave a device its margin
    assert pool.take() is None
    assert pool.ready() == 0
    pool.give_back(young)  # never sent, but now too old as well: dropped, not pooled
    assert pool.take() is None
    assert pool.live() == set()  # nothing of this process may stay in MicroK8s's file
    # just below the limit it is still handed out
    pool.fill()
    now[0] += 600 - 180 - 0.5
    token = pool.take()
    assert token is not None and now[0] - token.created < 600 - 180


def test_the_pool_refills_in_the_background_after_use(tmp_path: Path) -> None:
    pool, maker = make_pool(tmp_path, size=4)
    pool.start()
    try:
        assert pool.wait_ready(timeout=30)
        first = [pool.take() for _ in range(4)]
        assert all(t is not None for t in first)
        wait_until(lambda: pool.ready() == 4)
        second = [pool.take() for _ in range(4)]
        assert {t.secret for t in first if t}.isdisjoint({t.secret for t in second if t})
        assert len(maker.tokens) >= 8
    finally:
        pool.close()


def test_a_failing_add_node_stops_the_refill_and_wait_ready_says_so(tmp_path: Path) -> None:
    maker = Maker()
    maker.fail = True
    pool, _ = make_pool(tmp_path, size=4, maker=maker)
    pool.start()
    try:
        assert not pool.wait_ready(timeout=30)
        assert pool.take() is None and pool.create_now() is None
        maker.fail = False
        assert pool.create_now() is not None  # the fallback works again as soon as add-node does
    finally:
        pool.close()


# --- the pool in the hub, with the strict fake `microk8s` -------------------------------------------------


class Env:
    def __init__(self, root: Path, api: ApiServer) -> None:
        self.root, self.api = root, api
        self.fake = root / "mk8s"
        self.tokens_file = self.fake / "credentials" / "cluster-tokens.txt"
        self.kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        self.runner = Runner(env={**os.environ, "FAKE_MK8S_DIR": str(self.fake), "FAKE_MK8S_IPS": "10.0.0.1"})

    def settings(self, name: str, **extra: Any) -> HubSettings:
        values: dict[str, Any] = {
            "state_dir": self.root / name, "cluster_name": "pool", "listen": "127.0.0.1", "port": 0,
            "advertise": ("127.0.0.1",), "microk8s": FAKE_MICROK8S, "mdns": False, "rate": 10_000.0,
            "burst": 100_000, "kubeconfig": self.kubeconfig, "poll_interval": 60.0,
            "cluster_tokens_file": self.tokens_file, "pool_size": 8, **extra}
        return HubSettings(**values)

    def cluster_tokens(self) -> set[str]:
        text = self.tokens_file.read_text() if self.tokens_file.exists() else ""
        return {line.split("|")[0] for line in text.splitlines() if line}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with ApiServer() as api:
        yield Env(tmp_path, api)


@pytest.fixture
def running(env: Env) -> Iterator[Callable[..., RunningHub]]:
    hubs: list[RunningHub] = []

    def start(name: str, **extra: Any) -> RunningHub:
        hub = serve(Hub(env.settings(name, **extra), runner=env.runner))
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.close()


def enrol(hub: Hub, token: Token, dev: dict[str, Any]) -> hub_mod.Reply:
    return hub.enrol({"token": str(token), "device": dev}, "127.0.0.1")


def url_token(reply: hub_mod.Reply) -> str:
    return str(reply.body["join_urls"][0]).split("/")[1]


def test_pool_exhaustion_falls_back_to_creating_tokens(env: Env, running: Callable[..., RunningHub]) -> None:
    hub = running("exhaust", pool_size=2, max_workers=2).hub
    assert hub.pool.wait_ready(timeout=30)
    token = hub.state.create_token(ttl=3600, max_uses=10, labels={})
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
        replies = list(ex.map(lambda i: enrol(hub, token, device(f"burst-{i}", f"m{i}")), range(10)))
    assert [r.status for r in replies] == [200] * 10
    handed = [url_token(r) for r in replies]
    assert len(set(handed)) == 10  # ten devices, ten different single-use tokens
    assert set(handed) <= env.cluster_tokens()  # each one really exists in MicroK8s's file
    records = hub.state.read()["enrolments"].values()
    assert {j["sha256"] for r in records for j in r["join_tokens"]} == {token_sha256(t) for t in handed}
    assert hub.pool.created >= 10  # the 2 made ahead could not cover the burst: the rest were created for it


def test_no_add_node_no_join_url_and_nothing_spent(env: Env, running: Callable[..., RunningHub]) -> None:
    env.fake.mkdir(parents=True)
    (env.fake / "stopped").touch()  # MicroK8s stopped: add-node refuses (its wrapper's exit_if_stopped)
    hub = running("stopped", pool_size=2).hub
    assert not hub.pool.wait_ready(timeout=30)
    token = hub.state.create_token(ttl=3600, max_uses=1, labels={})
    reply = enrol(hub, token, device("waiting", "w"))
    assert reply.status == 503 and "join_urls" not in reply.body
    assert hub.state.read()["enrolments"] == {}  # nothing recorded: the one use is not spent
    (env.fake / "stopped").unlink()
    reply = enrol(hub, token, device("waiting", "w"))
    assert reply.status == 200, reply.body


def test_an_unsent_token_goes_back_to_the_pool(env: Env, running: Callable[..., RunningHub],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hub = running("giveback", pool_size=3).hub
    assert hub.pool.wait_ready(timeout=30)
    token = hub.state.create_token(ttl=3600, max_uses=1, labels={})
    env.api.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "taken"}})
    before = hub.pool.live()
    assert enrol(hub, token, device("taken", "t")).status == 409  # refused before any token was taken
    assert hub.pool.live() == before and hub.pool.ready() == 3
    # the token is revoked after the hub looked (and took a join token) but before it recorded anything
    real = hub._node_conflict

    def revoke_meanwhile(node: str, enrolment_id: str) -> str | None:
        hub.state.revoke_token(token.token_id)
        return real(node, enrolment_id)

    monkeypatch.setattr(hub, "_node_conflict", revoke_meanwhile)
    reply = enrol(hub, token, device("late", "l"))
    assert reply.status == 403 and "join_urls" not in reply.body
    assert hub.state.read()["enrolments"] == {}
    # the unsent token went back (or, the pool having refilled meanwhile, was retired): none left the hub
    wait_until(lambda: hub.pool.ready() == 3)
    hub.retire_join_tokens()
    assert {token_sha256(t) for t in env.cluster_tokens()} <= hub.pool.live()
    assert len(hub.pool.live() - before) <= 1


def test_a_restarted_hub_never_hands_an_earlier_token(env: Env) -> None:
    first = Hub(env.settings("restart", pool_size=3, add_node_ttl=120), runner=env.runner)
    assert first.pool.fill() == 3  # (not served: its refill thread would outlive the "crash" below)
    token = first.state.create_token(ttl=3600, max_uses=20, labels={})
    handed = {url_token(enrol(first, token, device(f"a{i}", f"a{i}"))) for i in range(2)}
    first.pool.fill()
    pooled_before_crash = env.cluster_tokens() - handed
    assert len(pooled_before_crash) == 3
    # a crash: the process is gone without stopping its pool (its secrets with it); a new hub starts
    now = [time.time()]
    second = serve(Hub(env.settings("restart", pool_size=3, add_node_ttl=120), runner=env.runner,
                       clock=lambda: now[0]))
    try:
        assert second.hub.pool.wait_ready(timeout=30)
        again = {url_token(enrol(second.hub, token, device(f"b{i}", f"b{i}"))) for i in range(5)}
        assert again.isdisjoint(handed | pooled_before_crash)
        # the earlier process's unsent tokens: kept while young (another hub might still own them)...
        second.hub.retire_join_tokens()
        assert pooled_before_crash <= env.cluster_tokens()
        # ...and retired from MicroK8s's file once their ttl is over, like every token the hub made
        now[0] += 121
        second.hub.retire_join_tokens()
        assert env.cluster_tokens().isdisjoint(pooled_before_crash | handed | again)
    finally:
        second.close()
        first._stop.set()  # its node watchers
    # a clean stop removes the pool's unsent tokens at once
    assert env.cluster_tokens() == set()


# --- one fsync per enrolment -----------------------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [4, 0], ids=["from-the-pool", "created-for-it"])
def test_one_fsync_per_enrolment(env: Env, running: Callable[..., RunningHub], monkeypatch: pytest.MonkeyPatch,
                                 pool_size: int) -> None:
    hub = running(f"fsync-{pool_size}", pool_size=pool_size).hub
    if pool_size:
        assert hub.pool.wait_ready(timeout=30)
    token = hub.state.create_token(ttl=3600, max_uses=5, labels={})
    me = threading.get_ident()
    calls: list[int] = []
    real = os.fsync

    def counting(fd: Any) -> None:
        if threading.get_ident() == me:  # this request's own writes (not the pool's refill in the background)
            calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    for i in range(3):
        calls.clear()
        reply = enrol(hub, token, device(f"sync-{i}", f"s{i}"))
        assert reply.status == 200, reply.body
        assert len(calls) == 1, f"enrolment {i}: {len(calls)} fsyncs"
    record = next(r for r in hub.state.read()["enrolments"].values() if r["node_name"] == "sync-2")
    assert record["state"] == "issued" and len(record["join_tokens"]) == 1  # both changes in that one write


def test_enrolments_at_the_same_moment_share_writes(env: Env, running: Callable[..., RunningHub],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    hub = running("group", pool_size=12).hub
    assert hub.pool.wait_ready(timeout=30)
    token = hub.state.create_token(ttl=3600, max_uses=12, labels={})
    calls: list[int] = []
    real = os.fsync

    def counting(fd: Any) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
        replies = list(ex.map(lambda i: enrol(hub, token, device(f"g{i}", f"g{i}")), range(12)))
    monkeypatch.setattr(os, "fsync", real)
    assert [r.status for r in replies] == [200] * 12
    assert 1 <= len(calls) <= 12  # at most one write per enrolment, fewer when they arrive together
    records = hub.state.read()["enrolments"]
    assert {r.body["enrolment"] for r in replies} == set(records)  # every answered one is in the file
    assert {token_sha256(url_token(r)) for r in replies} == {
        j["sha256"] for rec in records.values() for j in rec["join_tokens"]}


def test_a_change_that_fails_is_left_out_of_a_shared_write(tmp_path: Path) -> None:
    from hybrid_knative.join.state import HubState

    state = HubState(tmp_path)
    token = state.create_token(ttl=60, max_uses=5, labels={})
    gate = threading.Event()
    results: dict[str, Any] = {}

    def slow(data: dict[str, Any]) -> str:  # holds the batch open while the others queue behind it
        gate.wait(10)
        data["tokens"][token.token_id]["description"] = "first"
        return "first"

    def broken(data: dict[str, Any]) -> str:
        data["tokens"][token.token_id]["uses"] = 99  # changed, then fails: must not be written
        raise KeyError("boom")

    def good(data: dict[str, Any]) -> str:
        data["tokens"][token.token_id]["labels"] = {"ok": "yes"}
        return "good"

    def run(name: str, fn: Callable[[dict[str, Any]], str]) -> None:
        try:
            results[name] = state.apply(fn)
        except KeyError as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=("slow", slow))]
    threads[0].start()
    time.sleep(0.2)  # (only orders the start: the first one leads the write)
    threads += [threading.Thread(target=run, args=(n, f)) for n, f in (("broken", broken), ("good", good))]
    for t in threads[1:]:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(30)
    assert results["slow"] == "first" and results["good"] == "good" and isinstance(results["broken"], KeyError)
    saved = state.read()["tokens"][token.token_id]
    assert saved["description"] == "first" and saved["labels"] == {"ok": "yes"} and saved["uses"] == 0


# --- crash safety: killed mid-write, nothing lost or half-written ---------------------------------------------

CHILD = r'''
import hashlib, json, os, sys, time
from pathlib import Path
from hybrid_knative.join.hub import Hub, HubSettings
from hybrid_knative.system.runner import Runner
from tests.harness.emulator import ApiServer

root, fake, microk8s, round_ = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
real = os.fsync
def announced_fsync(fd):  # the parent kills this process right here: new data written, not yet in place
    print("fsync", flush=True)
    time.sleep(0.5)
    real(fd)
os.fsync = announced_fsync
with ApiServer() as api:
    settings = HubSettings(state_dir=root / "state", cluster_name="crash", listen="127.0.0.1", port=0,
                           advertise=("127.0.0.1",), microk8s=microk8s, mdns=False, pool_size=4,
                           kubeconfig=api.write_kubeconfig(root / f"kubeconfig-{round_}"),
                           cluster_tokens_file=Path(fake) / "credentials" / "cluster-tokens.txt")
    hub = Hub(settings, runner=Runner(env={**os.environ, "FAKE_MK8S_DIR": fake}))
    hub.pool.start()
    token = hub.state.create_token(ttl=3600, max_uses=10_000, labels={})
    for i in range(10_000):
        dev = {"machine_id": hashlib.md5(f"{round_}-{i}".encode()).hexdigest(), "node_name": f"c{round_}-{i}",
               "arch": "arm64", "memory_mb": 1, "gpu": None}
        reply = hub.enrol({"token": str(token), "device": dev}, "127.0.0.1")
        if reply.status == 200:  # answered: the device may act on it, so it must be on disk
            print(json.dumps({"id": reply.body["enrolment"], "url": reply.body["join_urls"][0]}), flush=True)
'''


def test_a_hub_killed_mid_write_loses_nothing_it_answered(env: Env) -> None:
    answered: list[dict[str, str]] = []
    for round_, kill_at in enumerate((4, 7, 5)):  # killed inside its 4th, 7th, 5th fsync (a write of the state)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(env.root), str(env.fake), FAKE_MICROK8S,
                                  str(round_)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"})
        assert child.stdout is not None
        writes = 0
        deadline = time.monotonic() + 120
        while writes < kill_at and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith("fsync"):
                writes += 1
            elif line.strip():
                answered.append(json.loads(line))
        if writes < kill_at:
            child.kill()
            raise AssertionError(f"round {round_}: the child stopped early: {child.communicate(timeout=30)[1][-2000:]}")
        child.send_signal(signal.SIGKILL)  # mid-write: it announced the fsync and sleeps before the rename
        rest, _ = child.communicate(timeout=30)
        answered += [json.loads(x) for x in rest.splitlines() if x.strip() and not x.startswith("fsync")]
    assert len(answered) >= 3
    # the state file is whole (valid JSON, never half of a write) and holds every answered enrolment,
    # with the join token it was answered with
    data = json.loads((env.root / "state" / "state.json").read_text())
    for item in answered:
        record = data["enrolments"].get(item["id"])
        assert record is not None, f"enrolment {item['id']} was answered but is lost"
        assert record["state"] == "issued"
        assert {j["sha256"] for j in record["join_tokens"]} == {token_sha256(item["url"].split("/")[1])}
    # every join token those processes created is known (enrolment or ledger): a new hub can retire them
    known = {j["sha256"] for r in data["enrolments"].values() for j in r.get("join_tokens", [])}
    known |= {e["sha256"] for e in Ledger(env.root / "state" / "join-tokens.jsonl").entries()}
    assert {token_sha256(t) for t in env.cluster_tokens()} <= known
    now = [time.time() + 601]
    later = Hub(env.settings("state", pool_size=0), runner=env.runner, clock=lambda: now[0])
    later.retire_join_tokens()
    assert env.cluster_tokens() == set()


def test_join_token_repr_has_no_secret() -> None:
    token = JoinToken("s" * 32, ("10.0.0.1:25000/" + "s" * 32 + "/x",), token_sha256("s" * 32), 0.0)
    assert "s" * 32 not in repr(token)


# --- the fake `microk8s add-node` refuses what MicroK8s refuses ---------------------------------------------


@pytest.mark.parametrize(("args", "code", "stdout"), [
    (["--token", "a" * 31, "--format", "json"], 1, "Invalid token size.  It must be 32 characters long."),
    (["--token", "a" * 32, "--token-ttl", "soon"], 2, ""),
    (["--token", "a" * 32, "--format", "xml"], 2, ""),
    (["--token", "a" * 32, "--uses", "1"], 2, ""),
    (["--format", "json", "--help"], 0, "usage: microk8s add-node"),
])
def test_the_fake_add_node_refuses_like_microk8s(tmp_path: Path, args: list[str], code: int, stdout: str) -> None:
    env = {**os.environ, "FAKE_MK8S_DIR": str(tmp_path)}
    done = subprocess.run([FAKE_MICROK8S, "add-node", *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == code, done
    assert stdout in done.stdout
    if code:
        assert not (tmp_path / "credentials" / "cluster-tokens.txt").exists()  # nothing written on refusal
    if code == 2:
        assert "usage: microk8s add-node" in done.stderr  # argparse's error, on stderr


def test_the_fake_add_node_writes_microk8s_token_lines(tmp_path: Path) -> None:
    env = {**os.environ, "FAKE_MK8S_DIR": str(tmp_path), "FAKE_MK8S_IPS": "10.0.0.1,10.0.0.2"}
    once, reusable = "a" * 32, "b" * 32
    for token, ttl in ((once, "-1"), (reusable, "60")):
        done = subprocess.run([FAKE_MICROK8S, "add-node", "--token", token, "--token-ttl", ttl, "--format", "json"],
                              env=env, capture_output=True, text=True, timeout=30, check=True)
        assert [u.split("/")[1] for u in json.loads(done.stdout)["urls"]] == [token, token]
    lines = (tmp_path / "credentials" / "cluster-tokens.txt").read_text().splitlines()
    assert lines[0] == once and lines[1].startswith(reusable + "|")  # -1: single use; else "token|expiry"
    (tmp_path / "stopped").touch()
    done = subprocess.run([FAKE_MICROK8S, "add-node", "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and "not running" in done.stdout
