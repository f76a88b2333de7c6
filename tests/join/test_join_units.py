"""Enrolment-string parser (incl. hypothesis), backoff, the agent loop with an injected clock, preflight,
token state and launch configurations. No network."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_knative.cli.join import parse_duration, token
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import ConfigError, PermanentError, TemporaryError
from hybrid_knative.join import agent
from hybrid_knative.join.enrolment import Enrolment, HubAddress, Token, format_enrolment, parse_enrolment
from hybrid_knative.join.protocol import valid_join_url
from hybrid_knative.join.state import HubState, parse_labels
from hybrid_knative.system.runner import Runner
from tests.join.conftest import FAKE_MICROK8S

TOKEN = Token("0123456789abcdef", "a" * 40)
FP = "b" * 64


def test_parse_valid_enrolment() -> None:
    text = f"hk1:{TOKEN}@10.1.2.3:9443,[fd00::1]:9443,hub.lan:443/{FP}"
    e = parse_enrolment(text)
    assert e.token == TOKEN and e.ca_fingerprint == FP
    assert e.hubs == (HubAddress("10.1.2.3", 9443), HubAddress("fd00::1", 9443), HubAddress("hub.lan", 443))
    assert format_enrolment(e) == text
    assert TOKEN.secret not in repr(e)


@pytest.mark.parametrize("text", [
    "", "hk2:x", f"hk1:{TOKEN}/{FP}", f"hk1:{TOKEN}@10.0.0.1:9443", f"hk1:{TOKEN}@10.0.0.1:9443/{FP[:-1]}",
    f"hk1:{TOKEN}@10.0.0.1:0/{FP}", f"hk1:{TOKEN}@10.0.0.1:70000/{FP}", f"hk1:{TOKEN}@10.0.0.256:1/{FP}",
    f"hk1:{TOKEN}@10.0.0.1:1,10.0.0.1:1/{FP}", f"hk1:{TOKEN}@/{FP}", f"hk1:{TOKEN}@[zz::1]:1/{FP}",
    f"hk1:{TOKEN} @10.0.0.1:1/{FP}", f"hk1:{TOKEN}@10.0.0.1:1/{FP.upper()}", "hk1:" + "x" * 2000,
    f"hk1:0123456789ABCDEF.{'a' * 40}@10.0.0.1:1/{FP}", f"hk1:{TOKEN}@h_b:1/{FP}",
    f"hk1:{TOKEN}@" + ",".join(f"10.0.0.{i}:1" for i in range(9)) + f"/{FP}",
])
def test_parse_invalid_enrolment(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_enrolment(text)
    assert TOKEN.secret not in str(info.value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(max_size=200).map(lambda s: "hk1:" + s),
                 st.builds(lambda a, b: f"hk1:{TOKEN}@{a}/{b}", st.text(max_size=80), st.text(max_size=70))))
def test_fuzz_parser_never_crashes(text: str) -> None:
    try:
        e = parse_enrolment(text)
    except ConfigError:
        return
    assert parse_enrolment(format_enrolment(e)) == e  # anything accepted round-trips


hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
                  st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,3}", fullmatch=True))


@settings(max_examples=200, deadline=None)
@given(token_id=st.from_regex(r"[0-9a-f]{16}", fullmatch=True), secret=st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
       hubs=st.lists(st.tuples(hosts, st.integers(1, 65535)), min_size=1, max_size=8, unique=True),
       fp=st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
def test_fuzz_valid_strings_round_trip(token_id: str, secret: str, hubs: list[tuple[str, int]], fp: str) -> None:
    e = Enrolment(Token(token_id, secret), tuple(HubAddress(h, p) for h, p in hubs), fp)
    assert parse_enrolment(format_enrolment(e)) == e


def test_backoff_is_exponential_bounded_and_jittered() -> None:
    b = agent.Backoff(initial=1, maximum=8)
    assert [b.delay(n, lambda: 1.0) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    assert [b.delay(n, lambda: 0.0) for n in range(4)] == [0.5, 1, 2, 4]
    assert b.delay(10_000, lambda: 0.5) == 6.0


def _device(tmp_path: Path, *, memory_kb: int = 2_000_000, clustered: bool = False) -> agent.AgentSettings:
    root = tmp_path / "host"
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc" / "meminfo").write_text(f"MemTotal: {memory_kb} kB\n")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "machine-id").write_text("c" * 32 + "\n")
    snap = SnapPaths(snap_data=tmp_path / "snap-data")
    if clustered:
        (snap.snap_data / "var" / "lock").mkdir(parents=True)
        (snap.snap_data / "var" / "lock" / "clustered.lock").touch()
    e = Enrolment(TOKEN, (HubAddress("10.77.9.9", 9),), FP)
    return agent.AgentSettings(enrolment=e, snap=snap, microk8s=FAKE_MICROK8S, host_root=root, node_name="unit",
                               timeout=30, backoff=agent.Backoff(initial=1, maximum=8))


def _runner(tmp_path: Path) -> Runner:
    return Runner(env={**os.environ, "FAKE_MK8S_DIR": str(tmp_path / "mk8s")})


def test_agent_retries_with_backoff_then_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def fail(*args: object) -> tuple[str, str]:
        raise TemporaryError("cannot reach the hub at 10.77.9.9:9")

    monkeypatch.setattr(agent, "attempt", fail)
    settings_ = _device(tmp_path)
    with pytest.raises(PermanentError, match="gave up after"):
        agent.run(settings_, runner=_runner(tmp_path),
                  sleep=lambda s: (sleeps.append(s), now.__setitem__(0, now[0] + s)),
                  clock=lambda: now[0], rand=lambda: 1.0)
    assert sleeps[:5] == [1, 2, 4, 8, 8]
    assert sum(sleeps) <= 30


def test_agent_permanent_refusal_stops_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> tuple[str, str]:
        raise agent.RefusedError("refused")

    monkeypatch.setattr(agent, "attempt", refuse)
    sleeps: list[float] = []
    with pytest.raises(agent.RefusedError):
        agent.run(_device(tmp_path), runner=_runner(tmp_path), sleep=sleeps.append)
    assert sleeps == []


def test_agent_is_idempotent_when_clustered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "attempt", lambda *a: pytest.fail("must not contact the hub"))
    outcome = agent.run(_device(tmp_path, clustered=True), runner=_runner(tmp_path))
    assert outcome.already_joined


def test_preflight_refuses_small_devices_and_missing_microk8s(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="RAM"):
        agent.preflight(_device(tmp_path, memory_kb=400_000), _runner(tmp_path), agent.Status(verbosity=-1))
    missing = agent.AgentSettings(**{**_device(tmp_path).__dict__, "microk8s": str(tmp_path / "nope")})
    with pytest.raises(PermanentError, match="not"):
        agent.preflight(missing, _runner(tmp_path), agent.Status(verbosity=-1))
    facts = agent.preflight(_device(tmp_path), _runner(tmp_path), agent.Status(verbosity=-1))
    assert facts is not None and facts.memory_mb == 1953 and facts.machine_id == "c" * 32


def test_state_survives_and_is_private(tmp_path: Path) -> None:
    state = HubState(tmp_path)
    tok = state.create_token(ttl=60, max_uses=2, labels={"site": "lab"}, approval=True)
    again = HubState(tmp_path)
    [info] = again.tokens()
    assert info.token_id == tok.token_id and info.approval and info.labels == {"site": "lab"}
    assert info.status(info.created + 61) == "expired"
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600
    assert tok.secret not in (tmp_path / "state.json").read_text() + (tmp_path / "audit.jsonl").read_text()
    with pytest.raises(ConfigError):
        again.revoke_token("ffffffffffffffff")
    with pytest.raises(ConfigError):
        again.approve("not-an-id")


@pytest.mark.parametrize("bad", ["x", "=v", "kubernetes.io/role=x", "a=" + "v" * 64, "a=-v", "hybrid-knative.io/x=1"])
def test_labels_are_validated(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_labels([bad])


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "30m", "24h", "7d")] == [90, 90, 1800, 86400, 604800]
    for bad in ("0", "1w", "-5", "999d", ""):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_token_create_writes_a_launch_configuration(tmp_path: Path) -> None:
    out = tmp_path / "microk8s.yaml"
    env = {"FAKE_MK8S_DIR": str(tmp_path / "mk8s"), "FAKE_MK8S_IPS": "10.0.0.7"}
    result = CliRunner(env=env).invoke(token, ["create", "--state-dir", str(tmp_path / "hub"), "--hub", "10.0.0.7:9443",
                                               "--ttl", "2h", "--uses", "5", "--labels", "site=fleet",
                                               "--launch-config", str(out), "--microk8s", FAKE_MICROK8S])
    assert result.exit_code == 0, result.output
    e = parse_enrolment(result.output.strip().splitlines()[-1])
    config = yaml.safe_load(out.read_text())
    assert config["version"] == "0.2.0"
    assert config["join"]["worker"] is True and valid_join_url(config["join"]["url"])
    assert config["join"]["url"].startswith("10.0.0.7:25000/")
    labels = dict(kv.split("=") for kv in config["extraKubeletArgs"]["--node-labels"].split(","))
    assert labels == {"site": "fleet", "hybrid-knative.io/edge": "true", "hybrid-knative.io/token": e.token.token_id}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # the cluster token was issued for the token's lifetime (reusable until it expires, for a fleet)
    issued = (tmp_path / "mk8s" / "credentials" / "cluster-tokens.txt").read_text().splitlines()
    assert len(issued) == 1 and float(issued[0].split("|")[1]) > 0


def test_token_create_refuses_bad_input_and_touches_nothing(tmp_path: Path) -> None:
    for args in (["--ttl", "soon"], ["--labels", "kubernetes.io/x=y"], ["--hub", "10.0.0.1"], ["--uses", "0"]):
        result = CliRunner().invoke(token, ["create", "--state-dir", str(tmp_path / "hub"), "--hub", "10.0.0.7:1",
                                            *args])
        assert result.exit_code != 0
    assert not (tmp_path / "hub" / "state.json").exists()
