"""End to end on a namespaced LAN: real TLS, real mDNS, hub and devices as processes; Kubernetes on the emulator."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_knative.join.enrolment import parse_enrolment
from hybrid_knative.join.state import HubState
from tests.harness.sysfs import RENDER_GID
from tests.join.conftest import World


def test_discover_enrol_join_and_label(world: World, hub: Path) -> None:
    world.device_root("pi-gpu", gpu="amd")
    text = world.token(hub, "--ttl", "1h", "--uses", "3", "--labels", "site=lab,room=b12")
    token = parse_enrolment(text).token
    result = world.device("join", "pi-gpu", "--discover", "--token", str(token), "--discovery-timeout", "15")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "joined: pi-gpu" in result.stdout
    node = world.wait_node("pi-gpu", "hybrid-knative.io/enrolment")
    labels = node["metadata"]["labels"]
    assert labels["hybrid-knative.io/arch"] == "amd64"
    assert labels["hybrid-knative.io/edge"] == "true"
    assert labels["site"] == "lab" and labels["room"] == "b12"
    assert labels["hybrid-knative.io/token"] == token.token_id
    assert labels["amd.com/gpu.gfx-target"].startswith("gfx")
    assert labels["hybrid-knative.io/gpu"] == "amd"
    assert node["metadata"]["annotations"]["hybrid-knative.io/render-gid"] == str(RENDER_GID)
    assert world.joins("pi-gpu") == ["attempt", "ok"]
    listing = world.cli("nodes", "--state-dir", str(hub)).stdout
    assert "pi-gpu" in listing and "joined" in listing
    # nothing secret in the hub's files
    for path in hub.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            assert token.secret not in path.read_text()
    assert oct((hub / "state.json").stat().st_mode & 0o777) == "0o600"
    assert oct((hub / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"

    # the same device again: idempotent, nothing contacted, no use consumed
    again = world.device("join", "pi-gpu", text)
    assert again.returncode == 0, again.stderr
    assert "already joined" in again.stdout
    assert world.joins("pi-gpu") == ["attempt", "ok"]
    assert {t.token_id: t.uses for t in HubState(hub).tokens()}[token.token_id] == 1


def _audit_reasons(state: Path) -> list[str]:
    return [r.get("reason") for r in HubState(state).audit_records() if r["event"] == "enrol-refused"]


def test_refused_tokens_expired_used_up_revoked(world: World, hub: Path) -> None:
    state = HubState(hub)
    info = json.loads((hub / "hub.json").read_text())
    from hybrid_knative.join.hub import enrolment_string

    expired = enrolment_string(state.create_token(ttl=60, max_uses=5, labels={}, now=0.0), info)
    used = world.token(hub, "--uses", "1")
    revoked = world.token(hub)
    world.cli("token", "revoke", "--state-dir", str(hub), parse_enrolment(revoked).token.token_id)
    ok = world.device("join", "used-1", used)
    assert ok.returncode == 0, ok.stderr
    for name, text in (("exp", expired), ("used-2", used), ("rev", revoked)):
        result = world.device("join", name, text)
        assert result.returncode != 0
        assert "the hub refused the token (unknown, wrong, expired, used up or revoked)" in result.stderr
        assert "Traceback" not in result.stderr
        assert parse_enrolment(text).token.secret not in result.stderr + result.stdout
        assert world.joins(name) == []
    assert _audit_reasons(hub)[-3:] == ["expired", "used-up", "revoked"]
    listing = world.cli("token", "list", "--state-dir", str(hub)).stdout
    assert "revoked" in listing and "used-up" in listing and "expired" in listing


def test_wrong_secret_is_refused_before_it_is_sent(world: World, hub: Path) -> None:
    text = world.token(hub)
    e = parse_enrolment(text)
    wrong = text.replace(e.token.secret, "0" * 40)
    result = world.device("join", "wrong", wrong)
    assert result.returncode != 0
    assert "could not prove it issued this token" in result.stderr
    assert world.joins("wrong") == []


def test_impersonated_hub_is_refused(world: World, hub: Path) -> None:
    """A rogue hub with its own certificate at another address: the device refuses to talk to it."""
    rogue_state = world.root / "rogue-state"
    rogue = world.start_hub(rogue_state, host="rogue", name="lab")
    try:
        text = world.token(hub)
        e = parse_enrolment(text)
        to_rogue = text.replace(f"@{world.lan.hosts['hub']}:9443", f"@{world.lan.hosts['rogue']}:9443")
        result = world.device("join", "victim", to_rogue)
        assert result.returncode != 0
        assert "is not the hub of this enrolment" in result.stderr
        assert world.joins("victim") == []
        assert HubState(rogue_state).enrolments() == []
        # discovery with the real token while only the rogue's fingerprint is pinned: refused too
        rogue_fp = json.loads((rogue_state / "hub.json").read_text())["fingerprint"]
        result = world.device("join", "victim", "--discover", "--token", str(e.token), "--cluster", "lab",
                              "--ca-fingerprint", "0" * 64, "--discovery-timeout", "10")
        assert result.returncode != 0
        assert "another CA fingerprint" in result.stderr
        assert rogue_fp != e.ca_fingerprint
    finally:
        rogue.stop()


def test_approval_flow(world: World, hub: Path) -> None:
    text = world.token(hub, "--approval", "--labels", "site=shop")
    agent = world.device_background("agent", "needs-ok", text, "--timeout", "60")
    agent.wait_for("waiting for approval", timeout=30)
    pending = [e for e in HubState(hub).enrolments() if e.node_name == "needs-ok"]
    assert [e.state for e in pending] == ["pending"]
    assert world.joins("needs-ok") == []
    world.cli("nodes", "approve", "--state-dir", str(hub), pending[0].enrolment_id)
    agent.wait_for("joined: needs-ok", timeout=30)
    assert agent.popen.wait(10) == 0
    node = world.wait_node("needs-ok", "hybrid-knative.io/enrolment")
    assert node["metadata"]["labels"]["site"] == "shop"


def test_hub_down_then_up_and_restart_keeps_state(world: World) -> None:
    state = world.root / "hub2-state"
    text = world.token(state, "--hub", f"{world.lan.hosts['hub']}:9444", "--uses", "2")
    (world.fake_dir / "fail_joins").write_text("1")  # and the first join fails like a flaky network
    agent = world.device_background("agent", "late", text, "--timeout", "60")
    agent.wait_for("cannot reach the hub", timeout=30)
    hub2 = world.start_hub(state, port=9444, name="lab2", extra=["--no-mdns"])
    try:
        agent.wait_for("joined: late", timeout=30)
        assert agent.popen.wait(10) == 0
        assert "microk8s join failed" in agent.output()
        assert world.joins("late") == ["attempt", "attempt", "ok"]
    finally:
        hub2.stop()
    hub2 = world.start_hub(state, port=9444, name="lab2", extra=["--no-mdns"])
    try:
        tokens = HubState(state).tokens()
        assert [t.uses for t in tokens] == [1]
        assert [e.node_name for e in HubState(state).enrolments()] == ["late"]
        result = world.device("join", "late-2", text)
        assert result.returncode == 0, result.stderr
        world.wait_node("late-2", "hybrid-knative.io/enrolment")
        assert [t.uses for t in HubState(state).tokens()] == [2]
    finally:
        hub2.stop()


def test_fifty_devices_enrol_concurrently(world: World, hub: Path) -> None:
    import subprocess
    import sys

    from tests.join.conftest import REPO, base_env

    text = world.token(hub, "--uses", "50")
    out = subprocess.run(world.lan.cmd("dev2", [sys.executable, "-m", "tests.join.swarm", text, "50", "sw"]),
                         env=base_env(world.fake_dir), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["results"]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert len({r["enrolment"] for r in results}) == 50
    token_id = parse_enrolment(text).token.token_id
    assert {t.token_id: t.uses for t in HubState(hub).tokens()}[token_id] == 50
    # a 51st device is refused: the token is used up
    out = subprocess.run(world.lan.cmd("dev2", [sys.executable, "-m", "tests.join.swarm", text, "1", "extra"]),
                         env=base_env(world.fake_dir), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "RefusedError" in json.loads(out.stdout)["results"][0]["error"]
