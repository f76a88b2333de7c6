"""The hub's HTTPS API in-process on 127.0.0.1 (real TLS): refusals, limits and fuzzing (hypothesis)."""

from __future__ import annotations

import http.client
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_knative.join.agent import DeviceFacts, HubClient, RefusedError
from hybrid_knative.join.enrolment import HubAddress, Token
from hybrid_knative.join.hub import REFUSED, Hub, HubSettings, RunningHub, serve
from hybrid_knative.join.state import HubState
from hybrid_knative.system.gpu import GpuReport
from hybrid_knative.system.runner import Runner
from tests.harness.emulator import ApiServer
from tests.join.conftest import FAKE_MICROK8S

DEVICE = {"machine_id": "ab" * 16, "node_name": "dev-a", "arch": "arm64", "memory_mb": 2048,
          "gpu": GpuReport("none", (), None, "no GPU").to_dict()}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("hubapi")
    fake = root / "microk8s"
    env = {**os.environ, "FAKE_MK8S_DIR": str(fake), "FAKE_MK8S_IPS": "10.0.0.1"}
    with ApiServer() as api:
        settings_ = HubSettings(state_dir=root / "state", cluster_name="api", listen="127.0.0.1", port=0,
                                advertise=("127.0.0.1",), microk8s=FAKE_MICROK8S, mdns=False, rate=10_000,
                                burst=100_000, kubeconfig=api.write_kubeconfig(root / "kubeconfig"),
                                node_timeout=0.01, cluster_tokens_file=fake / "credentials" / "cluster-tokens.txt")
        hub = serve(Hub(settings_, runner=Runner(env=env)))
        yield hub
        hub.close()


def _ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def raw(hub: RunningHub, method: str, path: str, body: bytes | None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", hub.port, context=_ctx(), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post(hub: RunningHub, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
    code, data = raw(hub, "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return code, json.loads(data)


def test_refusals_are_uniform_and_audited(running: RunningHub) -> None:
    state = running.hub.state
    good = state.create_token(ttl=3600, max_uses=1, labels={})
    expired = state.create_token(ttl=60, max_uses=1, labels={}, now=0.0)
    revoked = state.create_token(ttl=3600, max_uses=1, labels={})
    state.revoke_token(revoked.token_id)
    assert post(running, "/v1/enrol", {"token": str(good), "device": DEVICE})[0] == 200
    other = {**DEVICE, "machine_id": "cd" * 16, "node_name": "dev-b"}
    bodies = []
    for tok in (Token("f" * 16, "1" * 40), Token(good.token_id, "2" * 40), expired, revoked, good):
        code, body = post(running, "/v1/enrol", {"token": str(tok), "device": other})
        assert code == 403
        bodies.append(body)
    assert all(b == REFUSED for b in bodies)
    reasons = [r["reason"] for r in state.audit_records() if r["event"] == "enrol-refused"][-5:]
    assert reasons == ["unknown", "wrong-secret", "expired", "revoked", "used-up"]
    # the device it was issued to may come back (no new use), others may not
    assert post(running, "/v1/enrol", {"token": str(good), "device": DEVICE})[0] == 200
    assert {t.token_id: t.uses for t in state.tokens()}[good.token_id] == 1
    audit_text = state.audit_path.read_text() + state.path.read_text()
    for tok in (good, expired, revoked):
        assert tok.secret not in audit_text
    assert "25000/" not in audit_text  # join URLs are never stored


def test_hello_for_unknown_tokens_answers_like_for_known_ones(running: RunningHub) -> None:
    known = running.hub.state.create_token(ttl=3600, max_uses=1, labels={})
    for token_id in (known.token_id, "0" * 16):
        code, body = post(running, "/v1/hello", {"token_id": token_id, "nonce": "a" * 32})
        assert code == 200 and len(body["proof"]) == 64
    client = HubClient(HubAddress("127.0.0.1", running.port), running.hub.pki.fingerprint, timeout=10)
    client.prove_hub(known)  # the hub proves it knows the real token
    with pytest.raises(Exception, match="could not prove"):
        client.prove_hub(Token("0" * 16, "3" * 40))


def test_device_client_gets_join_urls_and_refusal(running: RunningHub) -> None:
    tok = running.hub.state.create_token(ttl=3600, max_uses=1, labels={"site": "x"})
    client = HubClient(HubAddress("127.0.0.1", running.port), running.hub.pki.fingerprint, timeout=10)
    facts = DeviceFacts(machine_id="ef" * 16, node_name="dev-c", arch="amd64", memory_mb=1024,
                        gpu=GpuReport("none", (), None, "no GPU"))
    answer = client.enrol(tok, facts)
    assert answer["join_urls"][0].startswith("10.0.0.1:25000/")
    with pytest.raises(RefusedError):
        client.enrol(tok, DeviceFacts(machine_id="01" * 16, node_name="dev-d", arch="amd64", memory_mb=1024,
                                      gpu=GpuReport("none", (), None, "no GPU")))


@pytest.mark.parametrize(("headers", "body", "code"), [
    ({"Content-Type": "application/json"}, b"{", 400),
    ({"Content-Type": "text/plain"}, b"{}", 415),
    ({"Content-Type": "application/json", "Content-Length": "70000"}, b"", 413),
    ({"Content-Type": "application/json"}, b"\xff\xfe", 400),
    ({"Content-Type": "application/json"}, b"[" * 5000 + b"]" * 5000, 400),
    ({"Content-Type": "application/json"}, b'{"token": 1, "device": {}}', 400),
], ids=["bad-json", "content-type", "too-large", "not-utf8", "deep-nesting", "wrong-types"])
def test_bad_requests(running: RunningHub, headers: dict[str, str], body: bytes, code: int) -> None:
    status, data = raw(running, "POST", "/v1/enrol", body, headers)
    assert status == code
    assert b"Traceback" not in data


def test_unknown_paths_and_methods(running: RunningHub) -> None:
    assert raw(running, "GET", "/v1/enrol", None)[0] == 404
    assert raw(running, "POST", "/nope", b"{}", {"Content-Type": "application/json"})[0] == 404
    assert raw(running, "DELETE", "/v1/enrol", None)[0] == 501
    code, data = raw(running, "GET", "/v1/ca", None)
    assert code == 200 and "BEGIN CERTIFICATE" in json.loads(data)["ca"]


def test_rate_limit_per_source(tmp_path: Path) -> None:
    settings_ = HubSettings(state_dir=tmp_path, cluster_name="rl", listen="127.0.0.1", port=0,
                            advertise=("127.0.0.1",), mdns=False, rate=0.01, burst=3)
    hub = serve(Hub(settings_))
    try:
        codes = [post(hub, "/v1/hello", {"token_id": "0" * 16, "nonce": "b" * 32})[0] for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
    finally:
        hub.close()
    [noise] = HubState(tmp_path).noise_records()  # aggregated, apart from the audit log
    assert noise["totals"] == {"rate-limited": 2} and noise["sources"]["rate-limited"] == {"127.0.0.1": 2}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(running: RunningHub) -> None:
    ctx = _ctx()
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    conn = http.client.HTTPSConnection("127.0.0.1", running.port, context=ctx, timeout=5)
    with pytest.raises((ssl.SSLError, OSError)):
        conn.request("GET", "/v1/ca")
        conn.getresponse()
    conn.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
device_like = st.fixed_dictionaries({}, optional={
    "machine_id": st.one_of(st.just("ab" * 16), st.text(max_size=40)),
    "node_name": st.one_of(st.just("fuzz"), st.text(max_size=70)),
    "arch": st.one_of(st.sampled_from(["amd64", "arm64", "mips"]), json_values),
    "memory_mb": json_values, "gpu": json_values, "extra": json_values})
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"token": st.one_of(st.text(max_size=80), json_values), "device": device_like}),
    st.fixed_dictionaries({"token_id": st.text(max_size=20), "nonce": st.text(max_size=70)}))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/enrol", "/v1/hello"]), body=bodies)
def test_fuzz_json_bodies(running: RunningHub, path: str, body: Any) -> None:
    code, data = raw(running, "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert code in (200, 400, 403), (code, data)
    assert code != 200 or path == "/v1/hello"  # no join URL without a valid token
    assert b"Traceback" not in data and b"join_urls" not in data
    json.loads(data)


header_names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                       min_size=1, max_size=20)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000),
       ctype=st.sampled_from(["application/json", "", "text/html", "application/json; x"]),
       extra=st.dictionaries(header_names, st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                                   max_size=40), max_size=5))
def test_fuzz_raw_requests(running: RunningHub, body: bytes, ctype: str, extra: dict[str, str]) -> None:
    headers = {k: v for k, v in extra.items() if k.lower() not in ("content-length", "transfer-encoding", "host")}
    if ctype:
        headers["Content-Type"] = ctype
    try:
        code, data = raw(running, "POST", "/v1/enrol", body, headers)
    except (http.client.HTTPException, ConnectionError):
        return  # the hub may close a connection on a request it cannot parse; that's fine
    assert 400 <= code < 500, (code, data)
    assert b"Traceback" not in data and b"join_urls" not in data
