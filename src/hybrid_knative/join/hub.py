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
import hashlib
import http.server
import json
import logging
import math
import re
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
from hybrid_knative.join.pool import JoinToken, JoinTokenPool, Ledger, SharedLock
from hybrid_knative.join.state import HubState, NoiseCounter, RefusalReason
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
MAX_JOIN_URLS = 3  # join URLs one enrolment may ever get (a failed `microk8s join` is retried with a new one)
CLOCK_SLACK = 5.0  # seconds: creationTimestamp has 1 s resolution and comes from the API server's clock
CONFLICTS = {
    "facts-changed": "this device enrolled with another node name or other facts; enrol it with a new token",
    "name-taken": "another device already enrolled with this node name; choose another --node-name",
    "node-exists": "a node with this name is already in the cluster; choose another --node-name "
                   "(or delete the old node first)",
    "already-joined": "this device's enrolment has already joined the cluster",
    "join-urls-used-up": f"this enrolment already received {MAX_JOIN_URLS} join URLs; enrol with a new token",
}
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
    cluster_tokens_file: Path = Path("/var/snap/microk8s/current/credentials/cluster-tokens.txt")
    add_node_ttl: int = 600  # how long an unused single-use join URL may stay valid (then it is retired)
    node_timeout: float = 1800.0
    poll_interval: float = 2.0
    rate: float = 2.0  # requests per second per source address
    burst: int = 20
    mdns: bool = True
    handshake_timeout: float = 10.0  # whole-request deadline: TLS handshake + headers + body
    max_workers: int = 8  # concurrent add-node calls
    pool_size: int = 64  # join tokens created ahead for a burst of enrolments (0: one add-node per enrolment)
    pool_margin: int | None = None  # a pooled join token is handed out only while younger than ttl - margin
    max_connections: int = 256  # open connections in total (well below systemd's fd limit of 1024)
    max_per_source: int = 16  # open connections per source address

    def __post_init__(self) -> None:
        for name in ("node_timeout", "poll_interval", "rate", "handshake_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive finite number, got {value!r}")
        if not 1 <= self.max_per_source <= self.max_connections:
            raise ConfigError("the per-source connection limit must be between 1 and the total limit")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535 (0: any free port), got {self.port}")
        if not 60 <= self.add_node_ttl <= 7 * 86400:
            raise ConfigError("--add-node-ttl must be between 60 seconds and 7 days")
        if not 0 <= self.pool_size <= 256:
            raise ConfigError(f"--join-pool must be 0-256, got {self.pool_size}")
        if self.pool_margin is not None and not 10 <= self.pool_margin <= self.add_node_ttl - 30:
            raise ConfigError("--join-pool-margin must be at least 10 seconds and at most --add-node-ttl - 30",
                              resolution="a pooled join token must leave a device time to join, and be usable")
        if self.max_workers < 1:
            raise ConfigError("at least one add-node call must be allowed at a time")
        if self.rate <= 0 or self.burst < 1:
            raise ConfigError("--rate must be positive and --burst at least 1")
        if not self.advertise:
            raise ConfigError("the hub needs at least one address to advertise",
                              resolution="pass --advertise with the hub's LAN IP address")
        for address in self.advertise:
            HubAddress(address, self.port)  # shape only; parse_hub_address validates strings
        if self.cluster_tokens_file.exists() and not self.cluster_tokens_file.is_file():
            raise ConfigError(f"{str(self.cluster_tokens_file)[:200]} is not a regular file")
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ConfigError(f"kubeconfig not found: {self.kubeconfig}")

    @property
    def token_margin(self) -> int:
        """Seconds of life a handed-out join token has at least (default: a third of its ttl, ≤ 3 min)."""
        return self.pool_margin if self.pool_margin is not None else max(10, min(180, self.add_node_ttl // 3))

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


class NodeIdentityError(PermanentError):
    """The Node of an enrolment's name is not the one its join created."""


def facts_digest(device: Mapping[str, Any]) -> str:
    """What an approval (and an issued join) is bound to: machine id, node name and every fact."""
    gpu = device.get("gpu")
    doc = {"machine_id": device["machine_id"], "node_name": device["node_name"], "arch": device["arch"],
           "memory_mb": device.get("memory_mb"), "gpu": gpu.to_dict() if isinstance(gpu, GpuReport) else gpu}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def _timestamp(value: Any) -> float | None:
    import datetime

    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any]


@dataclasses.dataclass
class _Retirement:
    stale: set[str] = dataclasses.field(default_factory=set)  # hashes to remove from MicroK8s's file
    issued: set[str] = dataclasses.field(default_factory=set)  # those among them that enrolments were given
    ledger: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # the ledger entries to keep
    rewrite_ledger: bool = False

    @property
    def due(self) -> bool:
        return bool(self.stale) or self.rewrite_ledger


@dataclasses.dataclass
class _Decision:
    reason: RefusalReason | None = None  # the token may not be used (403)
    conflict: str | None = None  # a token holder's request that cannot be honoured (409, audited)
    issue: bool = False  # a join URL is due now
    new: bool = False  # no enrolment of this machine with this token before this request
    snapshot: dict[str, Any] = dataclasses.field(default_factory=dict)


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
        self.refusals = NoiseCounter(self.state)
        self.tokens_lock = SharedLock()  # add-node appends to MicroK8s's token file; retiring rewrites it
        self.pool = JoinTokenPool(size=settings.pool_size, ttl=settings.add_node_ttl, margin=settings.token_margin,
                                  create=self._add_node, ledger=Ledger(settings.state_dir / "join-tokens.jsonl"),
                                  lock=self.tokens_lock, clock=clock, max_creating=settings.max_workers,
                                  on_discard=self._retire_quietly)
        self._watching: set[str] = set()
        self._watch_lock = threading.Lock()
        self._last_retire = -math.inf
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

    def warm_up(self) -> None:
        """Connect to the API server before the first enrolment needs it (not while a burst waits)."""
        try:
            self.kube()
        except Exception as exc:  # the first enrolment will report it (503) and retry
            log.warning("cannot connect to the cluster yet: %s", getattr(exc, "brief", None) or exc)

    def stop(self) -> None:
        self._stop.set()
        self.pool.close()
        self._retire_quietly()  # the tokens left in the pool leave MicroK8s's file with it
        self.refusals.flush()

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
        """Look first (no write), then — only for a valid token whose holder gets a join URL now — check
        the cluster for a Node of that name and take a join token (from the pool; created here only when
        the pool is empty), then decide again and record everything in ONE transaction (one fsync)."""
        digest = facts_digest(device)
        for _attempt in range(2):
            now = self.clock()
            look = self._decide(self.state.read(), token, device, digest, source, now, None)
            join: JoinToken | None = None
            if look.issue:
                enrolment_id = look.snapshot["id"]
                try:
                    node_conflict = self._node_conflict(look.snapshot["node_name"], enrolment_id)
                except HybridError as exc:
                    log.warning("cannot check for an existing node %s: %s", look.snapshot["node_name"], exc.brief)
                    return Reply(503, {"error": "the hub cannot reach the cluster right now; retry later"})
                if node_conflict is not None:
                    return self._conflict(node_conflict, token, source, device["node_name"],
                                          None if look.new else enrolment_id)
                join = self.pool.take() or self.pool.create_now()
                if join is None:
                    return Reply(503, {"error": "the hub cannot create a join token right now; retry later"})
            used = False
            try:
                decision = self.state.apply(
                    lambda data: self._decide(data, token, device, digest, source, now, join))  # noqa: B023
                used = decision.issue and join is not None
            finally:
                if join is not None:
                    (self.pool.settled if used else self.pool.give_back)(join)
            if decision.issue and join is None:
                continue  # approved between the look and the transaction: once more, with a join token
            return self._answer(decision, token, device, source, join)
        return Reply(503, {"error": "the hub is busy; retry later"})

    def _decide(self, data: dict[str, Any], token: Token, device: Mapping[str, Any], digest: str, source: str,
                now: float, join: JoinToken | None) -> _Decision:
        """What this request gets, applied to ``data`` (the state in a transaction, or a copy to look at).
        With ``join``, an issued join token is recorded too; without, ``issue`` only says one is due."""
        decision = _Decision()
        decision.reason = self.state.check_token(data, token, now)
        existing = next((e for e in data["enrolments"].values()
                         if e["machine_id"] == device["machine_id"] and e["token_id"] == token.token_id), None)
        decision.new = existing is None
        if decision.reason == "used-up" and existing is not None:
            decision.reason = None  # the same device coming back does not need another use
        if decision.reason is not None:
            return decision
        record = existing
        if record is not None and (record.get("facts") != digest or record["node_name"] != device["node_name"]):
            # what was approved (or issued) is this machine, this node name and these facts
            decision.conflict = "facts-changed"
            return decision
        if record is None:
            claimed = next((e for e in data["enrolments"].values() if e["node_name"] == device["node_name"]
                            and e["machine_id"] != device["machine_id"]), None)
            if claimed is not None:
                decision.conflict = "name-taken"
                return decision
            tok = data["tokens"][token.token_id]
            tok["uses"] = tok.get("uses", 0) + 1
            record = self._new_enrolment(tok, device, source, now)
            record["facts"] = digest
            data["enrolments"][record["id"]] = record
        if record["state"] == "joined":
            decision.conflict = "already-joined"
        elif record["state"] in ("approved", "issued"):
            if record.get("urls", 0) >= MAX_JOIN_URLS:
                decision.conflict = "join-urls-used-up"
            else:
                decision.issue = True
                if join is not None:  # counted in the same write that records it: replays cannot mint more
                    record["urls"] = record.get("urls", 0) + 1
                    record["state"] = "issued"
                    record["issued_at"] = record.get("issued_at") or now
                    record.setdefault("join_tokens", []).append(
                        {"sha256": join.sha256, "issued": now, "created": join.created})
        record["source"] = source
        record["updated"] = now
        decision.snapshot = dict(record)
        return decision

    def _answer(self, decision: _Decision, token: Token, device: Mapping[str, Any], source: str,
                join: JoinToken | None) -> Reply:
        if decision.reason is not None:
            self.state.audit("enrol-refused", reason=decision.reason, token_id=token.token_id, source=source,
                             node=device["node_name"])
            return Reply(403, REFUSED)
        snapshot = decision.snapshot
        if decision.conflict is not None:
            return self._conflict(decision.conflict, token, source, device["node_name"], snapshot.get("id"))
        enrolment_id = snapshot["id"]
        if snapshot["state"] == "pending":
            if decision.new:
                self.state.audit("enrol-pending", enrolment_id=enrolment_id, token_id=token.token_id,
                                 source=source, node=device["node_name"])
            return Reply(202, {"status": "pending", "enrolment": enrolment_id, "retry_after": 5,
                               "detail": f"waiting for approval: hybrid-knative nodes approve {enrolment_id}"})
        assert decision.issue and join is not None
        self.state.audit("join-issued", enrolment_id=enrolment_id, token_id=token.token_id, source=source,
                         node=device["node_name"], url=snapshot.get("urls"))
        self.watch_node(enrolment_id)
        return Reply(200, {"status": "join", "enrolment": enrolment_id, "join_urls": list(join.urls),
                           "node_name": snapshot["node_name"]})

    def _conflict(self, what: str, token: Token, source: str, node: str, enrolment_id: str | None) -> Reply:
        self.state.audit("enrol-conflict", reason=what, token_id=token.token_id, source=source, node=node,
                         enrolment_id=enrolment_id)
        return Reply(409, {"error": CONFLICTS[what]})

    def _node_conflict(self, node: str, enrolment_id: str) -> str | None:
        """A Node of that name that this enrolment did not create must never be touched."""
        existing = self.kube().get(ObjectRef("v1", "Node", None, node))
        if existing is None:
            return None
        labels = (existing.get("metadata") or {}).get("labels") or {}
        return "already-joined" if labels.get(LABEL_ENROLMENT) == enrolment_id else "node-exists"

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
                "created": now, "updated": now, "labels": labels, "annotations": annotations, "urls": 0}

    def _add_node(self, cluster_token: str) -> list[str] | None:
        """``microk8s add-node --token T --token-ttl -1``: a single-use MicroK8s join token (its cluster
        agent removes a token without expiry once a node joins with it; a positive ``--token-ttl`` would
        make it reusable until it expires). The hub retires it ``add_node_ttl`` seconds after creating it
        if no node used it. Run straight through subprocess (no sh): this is the join hot path."""
        argv = [self.settings.microk8s, "add-node", "--token", cluster_token, "--token-ttl", "-1", "--format", "json"]
        try:
            result = self.runner.run(argv, timeout=60, direct=True, redact=True)
        except HybridError:
            log.error("microk8s add-node failed")  # never the argv: it holds the cluster token
            return None
        try:
            return protocol.parse_add_node_output(result.stdout)
        except (ValueError, TypeError):
            log.error("microk8s add-node printed output the hub does not understand")  # never echo: secrets
            return None

    def retire_join_tokens(self) -> int:
        """Remove from MicroK8s's token file the join tokens this hub created that must not stay: issued
        or pooled ones ``add_node_ttl`` seconds after they were created (used or not: a used single-use
        token is already gone), and at once the ones this process discarded from its pool. Other lines
        (an operator's own tokens) are never touched. Returns how many lines were removed."""
        if not self._stale_join_tokens().due:
            return 0  # the common case, without blocking token creation
        path = self.settings.cluster_tokens_file
        with self.tokens_lock.exclusive():  # no add-node appends to the file while it is rewritten
            plan = self._stale_join_tokens()  # exact now: nothing is being created
            removed = 0
            if plan.stale:
                try:
                    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
                except FileNotFoundError:
                    lines = []
                except OSError as exc:
                    log.warning("cannot read %s to retire join tokens: %s", path, exc.strerror)
                    return 0
                keep = [line for line in lines
                        if hashlib.sha256(line.split("|", 1)[0].strip().encode()).hexdigest() not in plan.stale]
                removed = len(lines) - len(keep)
                if removed:
                    atomic_write(path, "".join(keep), mode=0o600)
            if plan.rewrite_ledger:
                self.pool.ledger.rewrite(plan.ledger)
        self.pool.forget_dropped(plan.stale)
        if plan.issued:
            with self.state.transaction() as data:
                for record in data["enrolments"].values():
                    for issued in record.get("join_tokens") or []:
                        if issued["sha256"] in plan.issued:
                            issued["retired"] = True
        return removed

    def _stale_join_tokens(self) -> _Retirement:
        """What a retire pass would do now (exact under the exclusive lock; a cheap look without it)."""
        now, ttl = self.clock(), self.settings.add_node_ttl
        live = self.pool.live()  # before reading the state: a token settled since is in the state then
        plan = _Retirement()
        handed: set[str] = set()
        for record in self.state.read()["enrolments"].values():
            for issued in record.get("join_tokens") or []:
                handed.add(str(issued["sha256"]))
                born = float(issued.get("created", issued["issued"]))
                if not issued.get("retired") and now - born >= ttl:
                    plan.issued.add(str(issued["sha256"]))
        plan.stale |= plan.issued
        entries = self.pool.ledger.entries()
        for entry in entries:
            digest = entry["sha256"]
            if digest in handed:
                continue  # its enrolment's record governs it now
            if digest in live:
                plan.ledger.append(entry)
            elif now - entry["created"] >= ttl or entry["owner"] == self.pool.owner:
                plan.stale.add(digest)  # expired, or discarded by this process (an older process's: at its ttl)
            else:
                plan.ledger.append(entry)
        dropped = len(entries) - len(plan.ledger)
        # the ledger shrinks when it retires something, or once enough handed entries piled up (not per enrolment)
        plan.rewrite_ledger = dropped > 0 and (bool(plan.stale) or dropped > 4 * self.settings.pool_size + 64)
        return plan

    def _retire_throttled(self) -> None:
        """From node watchers (each polls): one retire pass a second is plenty."""
        now = time.monotonic()
        with self._watch_lock:
            if now - self._last_retire < 1.0:
                return
            self._last_retire = now
        self._retire_quietly()

    def _retire_quietly(self) -> None:
        try:
            self.retire_join_tokens()
        except (OSError, HybridError) as exc:
            log.warning("cannot retire join tokens: %s", getattr(exc, "brief", None) or exc)

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
            # the device has yet to run `microk8s join` (seconds): the first look waits one interval, so
            # a burst of enrolments is not also a burst of Node lookups
            self._stop.wait(self.settings.poll_interval)
            while not self._stop.is_set() and time.monotonic() < deadline:
                enrolment = self.state.enrolment(enrolment_id)
                if enrolment is None or enrolment.state != "issued":
                    return
                try:
                    if self._label(enrolment_id, enrolment.node_name, enrolment.labels, enrolment.annotations):
                        self.state.set_enrolment_state(enrolment_id, "joined")
                        self.state.audit("node-labelled", enrolment_id=enrolment_id, node=enrolment.node_name)
                        return
                except NodeIdentityError as exc:
                    self.state.set_enrolment_state(enrolment_id, "refused")
                    self.state.audit("node-identity-refused", enrolment_id=enrolment_id, node=enrolment.node_name,
                                     detail=exc.brief)
                    return
                except HybridError as exc:
                    log.warning("cannot label node %s yet: %s", enrolment.node_name, exc.brief)
                self._retire_throttled()
                self._stop.wait(self.settings.poll_interval)
            if not self._stop.is_set():
                self.state.audit("node-timeout", enrolment_id=enrolment_id)
            self._retire_quietly()
        except Exception:  # a watcher must never take the hub down
            log.exception("node watcher %s failed", enrolment_id)
        finally:
            with self._watch_lock:
                self._watching.discard(enrolment_id)

    def _label(self, enrolment_id: str, node: str, labels: Mapping[str, str | None],
               annotations: Mapping[str, str | None]) -> bool:
        """Label the Node this enrolment created — never another one (bound by its uid on first sight)."""
        ref = ObjectRef("v1", "Node", None, node)
        kube = self.kube()
        current = kube.get(ref)
        if current is None:
            return False
        meta = current.get("metadata") or {}
        record = self.state.read()["enrolments"].get(enrolment_id) or {}
        uid = str(meta.get("uid") or "")
        owner = (meta.get("labels") or {}).get(LABEL_ENROLMENT)
        if record.get("node_uid"):
            if record["node_uid"] != uid:
                raise NodeIdentityError(f"node {node} is not the one enrolment {enrolment_id} created")
        else:
            created = _timestamp(meta.get("creationTimestamp"))
            issued = float(record.get("issued_at") or 0)
            if owner not in (None, enrolment_id) or created is None or created < issued - CLOCK_SLACK:
                raise NodeIdentityError(f"node {node} existed before enrolment {enrolment_id} issued its join URL")
            self.state.set_enrolment_state(enrolment_id, "issued", node_uid=uid)
        patch: dict[str, Any] = {"labels": dict(labels), "annotations": dict(annotations)}
        if uid:
            patch["uid"] = uid  # the API server refuses the patch if the Node was replaced meanwhile
        kube.merge_patch(ref, {"metadata": patch})
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
        try:
            result = self.runner.run(argv, timeout=60, direct=True, redact=True)
        except HybridError as exc:  # its message would show the argv, which holds the cluster token
            raise PermanentError("microk8s add-node failed: no launch configuration written",
                                 details=f"exit code {getattr(exc, 'returncode', '?')}",
                                 resolution="check `microk8s status` on this node and retry") from None
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


_CONTENT_LENGTH = re.compile(r"[0-9]{1,7}")  # ASCII digits only: str.isdigit() accepts '²' and '٣'


class BadRequest(Exception):
    """A request the hub will not parse (answered 400/411/413, never with a traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def content_length(values: list[str] | None) -> int | None:
    """The one Content-Length of a request, parsed strictly (None: absent)."""
    if not values:
        return None
    if len(values) != 1 or not _CONTENT_LENGTH.fullmatch(values[0].strip(" \t")):
        raise BadRequest(400, "malformed Content-Length")
    return int(values[0].strip(" \t"))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's (send_header appends, flush_headers writes)
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
        self.send_header("Connection", "close")  # one request per connection: the deadline covers it whole
        self.close_connection = True
        # headers and body in ONE write: two small writes stall ~40 ms on Nagle + delayed ACK
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def _guard(self, fn: Callable[[], Reply]) -> None:
        try:
            reply = fn()
        except BadRequest as exc:
            reply = Reply(exc.status, {"error": str(exc)})
        except (OSError, ValueError):  # the client went away, timed out or sent a short body
            self.close_connection = True
            return
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
        self.server.request_read(self.connection)
        if self.path == protocol.PATH_CA:
            hub = self.server.hub
            return Reply(200, {"ca": hub.pki.ca_pem().decode("ascii"), "cluster": hub.settings.cluster_name})
        return Reply(404, {"error": "not found"})

    def _read_body(self, length: int) -> bytes:
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise BadRequest(400, "the body is shorter than its Content-Length")
        return raw

    def _post(self) -> Reply:
        hub = self.server.hub
        source = str(self.client_address[0])
        if self.headers.get_all("Transfer-Encoding"):
            raise BadRequest(411, "Content-Length required (no Transfer-Encoding)")
        length = content_length(self.headers.get_all("Content-Length"))
        if self.path not in (protocol.PATH_HELLO, protocol.PATH_ENROL):
            # read a (small) body first: closing a TLS socket with unread data resets the connection,
            # and the client would lose the 404
            if length is not None and length <= protocol.MAX_BODY:
                self._read_body(length)
            self.server.request_read(self.connection)
            return Reply(404, {"error": "not found"})
        if length is None:
            raise BadRequest(411, "Content-Length required")
        if length > protocol.MAX_BODY:
            raise BadRequest(413, "request too large")
        raw = self._read_body(length)  # read before any answer, so that closing never resets the reply
        self.server.request_read(self.connection)
        if not hub.limiter.allow(source):
            hub.refusals.count("rate-limited", source)
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


@dataclasses.dataclass
class _Conn:
    fd: int
    source: str
    deadline: float


class _Server(http.server.ThreadingHTTPServer):
    """A thread per connection, bounded: at most ``max_connections`` open (``max_per_source`` per source
    address); each must deliver its whole request within ``handshake_timeout`` seconds of being
    accepted (a reaper shuts down those that do not), whatever pace it trickles bytes at."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], hub: Hub) -> None:
        self.hub = hub
        self.tls = hub.pki.server_context()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._conn_lock = threading.Lock()
        self._per_source: dict[str, int] = {}
        self._conns: dict[int, _Conn] = {}
        self._closing = threading.Event()
        super().__init__(address, _Handler)
        self._reaper = threading.Thread(target=self._reap, name="hub-reaper", daemon=True)
        self._reaper.start()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        source = str(client_address[0])
        settings = self.hub.settings
        with self._conn_lock:
            mine = self._per_source.get(source, 0)
            busy = mine >= settings.max_per_source
            if not busy and len(self._conns) >= settings.max_connections:
                # full: a source with fewer open connections evicts one still-unfinished request of the
                # source with the most (many-address floods cannot lock out a device with one address)
                busy = not self._evict_from_heaviest(mine)
            if not busy:
                self._per_source[source] = self._per_source.get(source, 0) + 1
                self._conns[id(request)] = _Conn(request.fileno(), source,
                                                 time.monotonic() + settings.handshake_timeout)
        if busy:
            self.hub.refusals.count("connection-limit", source)
            with contextlib.suppress(OSError):
                request.close()  # no thread, no TLS: the fd is freed at once
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # e.g. no thread could be started
            self.shutdown_request(request)

    def _evict_from_heaviest(self, mine: int) -> bool:
        heaviest = max(self._per_source, key=lambda src: self._per_source[src], default=None)
        if heaviest is None or self._per_source[heaviest] <= mine + 1:
            return False
        victim = next((c for c in self._conns.values() if c.source == heaviest and math.isfinite(c.deadline)), None)
        if victim is None:
            return False
        victim.deadline = -math.inf  # the reaper's next pass would do it too; do it now
        self._shut(victim)
        self.hub.refusals.count("evicted", heaviest)
        return True

    @staticmethod
    def _shut(conn: _Conn) -> None:
        with contextlib.suppress(OSError), socket.fromfd(conn.fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
            dup.shutdown(socket.SHUT_RDWR)  # unblocks the handshake/read in its thread

    def _forget(self, request: Any) -> None:
        """Before the connection's fd is closed (so that the reaper never touches a reused fd)."""
        with self._conn_lock:
            conn = self._conns.pop(id(request), None)
            if conn is not None:
                left = self._per_source.get(conn.source, 1) - 1
                if left > 0:
                    self._per_source[conn.source] = left
                else:
                    self._per_source.pop(conn.source, None)

    @property
    def open_connections(self) -> int:
        with self._conn_lock:
            return len(self._conns)

    def request_read(self, tls: Any) -> None:
        """The request is in: from here on the hub's own work (add-node) may take its time."""
        fd = tls.fileno()
        with self._conn_lock:
            for conn in self._conns.values():
                if conn.fd == fd:
                    conn.deadline = math.inf

    def _reap(self) -> None:
        while not self._closing.wait(0.25):
            now = time.monotonic()
            with self._conn_lock:  # held while shutting down: _forget (before close) cannot interleave
                for conn in self._conns.values():
                    if conn.deadline < now:
                        conn.deadline = math.inf
                        self._shut(conn)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.hub.settings.handshake_timeout)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # bad handshake: nothing to answer
        try:
            _Handler(tls, client_address, self)
        finally:
            self._forget(request)
            with contextlib.suppress(OSError):
                tls.close()

    def shutdown_request(self, request: Any) -> None:
        self._forget(request)
        with contextlib.suppress(OSError):
            request.close()

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()

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
    hub.pool.start()
    threading.Thread(target=hub.warm_up, name="hub-warm-up", daemon=True).start()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="hub-http",
                              daemon=True)
    thread.start()
    advertiser = None
    if settings.mdns:
        from hybrid_knative.join.mdns import advertise

        advertiser = advertise(cluster=settings.cluster_name, fingerprint=hub.pki.fingerprint,
                               port=int(server.server_address[1]), addresses=settings.advertise)
    return RunningHub(hub, server, thread, advertiser)

