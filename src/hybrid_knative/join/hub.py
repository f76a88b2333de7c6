"""The hub: an HTTPS enrolment service on the control plane, advertised over mDNS.

Built on the standard library's ``http.server`` + ``ssl``: no extra dependency on a node that
already runs MicroK8s, a request model we fully control (size limits, timeouts, uniform errors),
and a thread per connection, which is plenty for a LAN's worth of devices. The TLS handshake is
done in the connection's thread (with a timeout), so a slow client cannot block accept().

Enrolment: validate the request → check the token (constant time, uniform refusal) → record the
enrolment (a use is consumed once per device) → if the token needs approval, answer "pending" →
`microk8s add-node --token-ttl … --format json` → answer the join URLs → watch for the Node and
label it. Nothing secret (token secrets, join URLs) is logged or stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError, PermanentError
from hybrid_knative.join import protocol
from hybrid_knative.join.enrolment import Enrolment, HubAddress, Token, parse_token
from hybrid_knative.join.pki import HubPki, ensure_pki
from hybrid_knative.join.state import HubState
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.system.files import atomic_write
from hybrid_knative.system.gpu import MANAGED_ANNOTATIONS, MANAGED_LABELS, GpuReport
from hybrid_knative.system.runner import Runner

log = logging.getLogger(__name__)

LABEL_EDGE = "hybrid-knative.io/edge"
LABEL_ARCH = "hybrid-knative.io/arch"
LABEL_TOKEN = "hybrid-knative.io/token"  # noqa: S105 - a label key, not a secret
LABEL_ENROLMENT = "hybrid-knative.io/enrolment"
ANNOTATION_ENROLLED_AT = "hybrid-knative.io/enrolled-at"
REFUSED = {"error": "enrolment refused",
           "detail": "the token is unknown, wrong, expired, used up or revoked"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class HubSettings:
    state_dir: Path
    cluster_name: str
    listen: str = "0.0.0.0"  # noqa: S104 - the hub serves the LAN
    port: int = 9443
    advertise: tuple[str, ...] = ()
    kubeconfig: Path | None = None
    context: str | None = None
    microk8s: str = "microk8s"
    add_node_ttl: int = 600
    node_timeout: float = 1800.0
    poll_interval: float = 2.0
    rate: float = 2.0  # requests per second per source address
    burst: int = 20
    mdns: bool = True
    handshake_timeout: float = 10.0
    max_workers: int = 8  # concurrent add-node calls

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535 (0: any free port), got {self.port}")
        if not 60 <= self.add_node_ttl <= 7 * 86400:
            raise ConfigError("--add-node-ttl must be between 60 seconds and 7 days")
        if self.rate <= 0 or self.burst < 1:
            raise ConfigError("--rate must be positive and --burst at least 1")
        if not self.advertise:
            raise ConfigError("the hub needs at least one address to advertise",
                              resolution="pass --advertise with the hub's LAN IP address")
        for address in self.advertise:
            HubAddress(address, self.port)  # shape only; parse_hub_address validates strings
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ConfigError(f"kubeconfig not found: {self.kubeconfig}")

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def info_path(self) -> Path:
        return self.state_dir / "hub.json"


class RateLimiter:
    """A token bucket per source address (bounded memory)."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_sources: int = 10_000) -> None:
        self.rate, self.burst, self.clock, self.max_sources = rate, burst, clock, max_sources
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, source: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(source, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= self.max_sources and source not in self._buckets:
                full = [s for s, (t, ts) in self._buckets.items() if t + (now - ts) * self.rate >= self.burst]
                for s in full or list(self._buckets)[: self.max_sources // 10]:
                    del self._buckets[s]
            self._buckets[source] = (tokens, now)
            return allowed


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any]


class Hub:
    """The enrolment logic, independent of HTTP (the handler below only parses and replies)."""

    def __init__(self, settings: HubSettings, *, runner: Runner | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.runner = runner or Runner()
        self.clock = clock
        self.state = HubState(settings.state_dir, clock=clock)
        self.pki: HubPki = ensure_pki(settings.pki_dir, cluster_name=settings.cluster_name,
                                      addresses=settings.advertise)
        self.limiter = RateLimiter(settings.rate, settings.burst)
        self._add_node = threading.BoundedSemaphore(settings.max_workers)
        self._watching: set[str] = set()
        self._watch_lock = threading.Lock()
        self._stop = threading.Event()
        self._kube: KubeApi | None = None
        self._kube_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    def write_info(self, port: int) -> None:
        """hub.json: what `token create` needs to print enrolment strings (public data only)."""
        info = {"cluster": self.settings.cluster_name, "fingerprint": self.pki.fingerprint,
                "addresses": [str(HubAddress(a, port)) for a in self.settings.advertise]}
        atomic_write(self.settings.info_path, json.dumps(info, indent=1) + "\n", mode=0o644)

    def resume_watches(self) -> None:
        for enrolment in self.state.enrolments():
            if enrolment.state == "issued":
                self.watch_node(enrolment.enrolment_id)

    def stop(self) -> None:
        self._stop.set()

    # --- requests ----------------------------------------------------------------------------

    def hello(self, body: Any) -> Reply:
        try:
            token_id, nonce = protocol.parse_hello(body)
        except protocol.FieldError as exc:
            return Reply(400, {"error": str(exc)})
        key = self.state.hub_proof_key(token_id)
        return Reply(200, {"proof": protocol.hub_proof(key, self.pki.fingerprint, nonce),
                           "cluster": self.settings.cluster_name})

    def enrol(self, body: Any, source: str) -> Reply:
        if not isinstance(body, dict) or set(body) != {"token", "device"}:
            return Reply(400, {"error": "expected exactly the fields token and device"})
        try:
            token = parse_token(body["token"]) if isinstance(body["token"], str) else None
        except ConfigError:
            token = None
        if token is None:
            return Reply(400, {"error": "invalid field: token"})
        try:
            device = protocol.parse_device(body["device"])
        except protocol.FieldError as exc:
            return Reply(400, {"error": str(exc)})
        return self._enrol(token, device, source)

    def _enrol(self, token: Token, device: dict[str, Any], source: str) -> Reply:
        now = self.clock()
        with self.state.transaction() as data:
            reason = self.state.check_token(data, token, now)
            existing = next((e for e in data["enrolments"].values()
                             if e["machine_id"] == device["machine_id"] and e["token_id"] == token.token_id), None)
            if reason == "used-up" and existing is not None:
                reason = None  # the same device coming back does not need another use
            record: dict[str, Any] | None = None
            if reason is None:
                if existing is None:
                    tok = data["tokens"][token.token_id]
                    tok["uses"] = tok.get("uses", 0) + 1
                    record = self._new_enrolment(tok, device, source, now)
                    data["enrolments"][record["id"]] = record
                else:
                    record = existing
                    record["source"] = source
                    record["node_name"] = device["node_name"]
                    record["updated"] = now
                snapshot = dict(record)
        if reason is not None or record is None:
            self.state.audit("enrol-refused", reason=reason, token_id=token.token_id, source=source,
                             node=device["node_name"])
            return Reply(403, REFUSED)
        enrolment_id = snapshot["id"]
        if snapshot["state"] == "pending":
            if existing is None:
                self.state.audit("enrol-pending", enrolment_id=enrolment_id, token_id=token.token_id,
                                 source=source, node=device["node_name"])
            return Reply(202, {"status": "pending", "enrolment": enrolment_id, "retry_after": 5,
                               "detail": f"waiting for approval: hybrid-knative nodes approve {enrolment_id}"})
        with self._add_node:
            urls = self._join_urls()
        if urls is None:
            return Reply(503, {"error": "the hub cannot create a join token right now; retry later"})
        self.state.set_enrolment_state(enrolment_id, "issued")
        self.state.audit("join-issued", enrolment_id=enrolment_id, token_id=token.token_id, source=source,
                         node=device["node_name"])
        self.watch_node(enrolment_id)
        return Reply(200, {"status": "join", "enrolment": enrolment_id, "join_urls": urls,
                           "node_name": snapshot["node_name"]})

    def _new_enrolment(self, token: Mapping[str, Any], device: Mapping[str, Any], source: str,
                       now: float) -> dict[str, Any]:
        enrolment_id = secrets.token_hex(6)
        gpu: GpuReport | None = device["gpu"]
        labels: dict[str, str | None] = dict.fromkeys(MANAGED_LABELS)
        annotations: dict[str, str | None] = dict.fromkeys(MANAGED_ANNOTATIONS)
        if gpu is not None:
            labels.update(gpu.labels())
            annotations.update(gpu.annotations())
        labels.update(token.get("labels") or {})
        labels.update({LABEL_EDGE: "true", LABEL_ARCH: device["arch"], LABEL_TOKEN: token["id"],
                       LABEL_ENROLMENT: enrolment_id})
        annotations[ANNOTATION_ENROLLED_AT] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"id": enrolment_id, "token_id": token["id"], "machine_id": device["machine_id"],
                "node_name": device["node_name"], "arch": device["arch"], "memory_mb": device["memory_mb"],
                "state": "pending" if token.get("approval") else "approved", "source": source,
                "created": now, "updated": now, "labels": labels, "annotations": annotations}

    def _join_urls(self) -> list[str] | None:
        argv = [self.settings.microk8s, "add-node", "--token-ttl", str(self.settings.add_node_ttl), "--format", "json"]
        try:
            result = self.runner.run(argv, timeout=60)
        except HybridError as exc:
            log.error("microk8s add-node failed: %s", exc.brief)  # the brief has argv and exit code only
            return None
        try:
            return protocol.parse_add_node_output(result.stdout)
        except (ValueError, TypeError):
            log.error("microk8s add-node printed output the hub does not understand")  # never echo: secrets
            return None

    # --- node labelling ----------------------------------------------------------------------

    def kube(self) -> KubeApi:
        with self._kube_lock:
            if self._kube is None:
                kubeconfig = self.settings.kubeconfig or Path("/var/snap/microk8s/current/credentials/client.config")
                self._kube = KubeApi.connect(kubeconfig, self.settings.context)
            return self._kube

    def watch_node(self, enrolment_id: str) -> None:
        with self._watch_lock:
            if enrolment_id in self._watching:
                return
            self._watching.add(enrolment_id)
        threading.Thread(target=self._watch, args=(enrolment_id,), name=f"watch-{enrolment_id}", daemon=True).start()

    def _watch(self, enrolment_id: str) -> None:
        try:
            deadline = time.monotonic() + self.settings.node_timeout
            while not self._stop.is_set() and time.monotonic() < deadline:
                enrolment = self.state.enrolment(enrolment_id)
                if enrolment is None or enrolment.state != "issued":
                    return
                try:
                    if self._label(enrolment_id, enrolment.node_name, enrolment.labels, enrolment.annotations):
                        self.state.set_enrolment_state(enrolment_id, "joined")
                        self.state.audit("node-labelled", enrolment_id=enrolment_id, node=enrolment.node_name)
                        return
                except HybridError as exc:
                    log.warning("cannot label node %s yet: %s", enrolment.node_name, exc.brief)
                self._stop.wait(self.settings.poll_interval)
            if not self._stop.is_set():
                self.state.audit("node-timeout", enrolment_id=enrolment_id)
        except Exception:  # a watcher must never take the hub down
            log.exception("node watcher %s failed", enrolment_id)
        finally:
            with self._watch_lock:
                self._watching.discard(enrolment_id)

    def _label(self, enrolment_id: str, node: str, labels: Mapping[str, str | None],
               annotations: Mapping[str, str | None]) -> bool:
        ref = ObjectRef("v1", "Node", None, node)
        kube = self.kube()
        if kube.get(ref) is None:
            return False
        kube.merge_patch(ref, {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}})
        return True

    # --- launch configurations ---------------------------------------------------------------

    def launch_config(self, token_id: str, ttl: int) -> dict[str, Any]:
        """A MicroK8s launch configuration that joins this cluster as a worker on first boot."""
        record = self.state.read()["tokens"].get(token_id)
        if record is None:
            raise ConfigError(f"no token {token_id}")
        cluster_token = secrets.token_hex(16)  # ≥ 32 characters, as add-node requires
        argv = [self.settings.microk8s, "add-node", "--token", cluster_token, "--token-ttl", str(ttl),
                "--format", "json"]
        result = self.runner.run(argv, timeout=60)
        try:
            urls = protocol.parse_add_node_output(result.stdout)
        except (ValueError, TypeError):
            raise PermanentError("microk8s add-node printed output hybrid-knative does not understand",
                                 resolution="check `microk8s add-node --format json` on this node") from None
        labels = {**record.get("labels", {}), LABEL_EDGE: "true", LABEL_TOKEN: token_id}
        return {
            "version": "0.2.0",
            "join": {"url": urls[0], "worker": True},
            "extraKubeletArgs": {"--node-labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))},
        }


def enrolment_string(token: Token, hub_info: Mapping[str, Any]) -> str:
    from hybrid_knative.join.enrolment import format_enrolment, parse_hub_address

    hubs = tuple(parse_hub_address(a) for a in hub_info["addresses"])
    return format_enrolment(Enrolment(token, hubs, hub_info["fingerprint"]))


# --- HTTP ------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "hybrid-knative-hub"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], format % args)

    def _reply(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if reply.status in (429, 503):
            self.send_header("Retry-After", "2")
        if reply.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _guard(self, fn: Callable[[], Reply]) -> None:
        try:
            reply = fn()
        except Exception:  # never a 500 with a traceback: log it, answer uniformly
            log.exception("internal error while serving %s", self.path[:100])
            reply = Reply(503, {"error": "the hub could not handle the request; retry later"})
        try:
            self._reply(reply)
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _get(self) -> Reply:
        if self.path == protocol.PATH_CA:
            hub = self.server.hub
            return Reply(200, {"ca": hub.pki.ca_pem().decode("ascii"), "cluster": hub.settings.cluster_name})
        return Reply(404, {"error": "not found"})

    def _post(self) -> Reply:
        hub = self.server.hub
        source = str(self.client_address[0])
        length_text = self.headers.get("Content-Length")
        if self.path not in (protocol.PATH_HELLO, protocol.PATH_ENROL):
            # read a (small) body first: closing a TLS socket with unread data resets the connection,
            # and the client would lose the 404
            if length_text is not None and length_text.isdigit() and int(length_text) <= protocol.MAX_BODY:
                self.rfile.read(int(length_text))
            return Reply(404, {"error": "not found"})
        if length_text is None or not length_text.isdigit():
            return Reply(411, {"error": "Content-Length required"})
        length = int(length_text)
        if length > protocol.MAX_BODY:
            return Reply(413, {"error": "request too large"})
        raw = self.rfile.read(length)  # read before any answer, so that closing never resets the reply
        if not hub.limiter.allow(source):
            hub.state.audit("rate-limited", source=source)
            return Reply(429, {"error": "too many requests; retry later"})
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return Reply(415, {"error": "Content-Type must be application/json"})
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return Reply(400, {"error": "the body is not valid JSON"})
        if self.path == protocol.PATH_HELLO:
            return hub.hello(body)
        return hub.enrol(body, source)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], hub: Hub) -> None:
        self.hub = hub
        self.tls = hub.pki.server_context()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.hub.settings.handshake_timeout)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # bad handshake: nothing to answer
        try:
            _Handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0] if client_address else "?",
                  exc_info=True)


@dataclasses.dataclass
class RunningHub:
    hub: Hub
    server: _Server
    thread: threading.Thread
    advertiser: Any | None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.hub.stop()
        if self.advertiser is not None:
            with contextlib.suppress(Exception):
                self.advertiser.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve(hub: Hub) -> RunningHub:
    """Start serving in a background thread (and advertise over mDNS unless disabled)."""
    settings = hub.settings
    try:
        server = _Server((settings.listen, settings.port), hub)
    except OSError as exc:
        raise PermanentError(f"the hub cannot listen on {settings.listen}:{settings.port}: {exc.strerror}",
                             resolution="pick another --port, or stop what is using it") from None
    hub.write_info(int(server.server_address[1]))
    hub.resume_watches()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="hub-http",
                              daemon=True)
    thread.start()
    advertiser = None
    if settings.mdns:
        from hybrid_knative.join.mdns import advertise

        advertiser = advertise(cluster=settings.cluster_name, fingerprint=hub.pki.fingerprint,
                               port=int(server.server_address[1]), addresses=settings.advertise)
    return RunningHub(hub, server, thread, advertiser)

