"""The hub's state: tokens (hashed), enrolments and the audit log. Survives restarts.

One JSON file (0600, atomic writes) guarded by an advisory lock, so the CLI (`token create`,
`nodes approve`) and a running hub can change it at the same time. The audit log is JSON lines
(0600). Neither ever holds a token secret or a MicroK8s join URL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.join.enrolment import SECRET_HEX, TOKEN_ID_HEX, Token
from hybrid_knative.system.files import atomic_write

SCHEMA = 1
MAX_AUDIT_BYTES = 4 * 1024 * 1024
NOISE_INTERVAL = 60.0  # seconds between two aggregated records of refused requests
MAX_NOISE_SOURCES = 1000  # distinct sources named per record (the rest are only counted)
Clock = Callable[[], float]

EnrolmentState = Literal["pending", "approved", "issued", "joined", "refused"]
RefusalReason = Literal["unknown", "wrong-secret", "expired", "used-up", "revoked"]

_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_RESERVED_PREFIXES = ("kubernetes.io", "k8s.io", "hybrid-knative.io")
_ENROLMENT_ID = re.compile(r"^[0-9a-f]{12}$")
_HELLO_KEY = re.compile(r"[0-9a-f]{64}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def validate_label(key: str, value: str) -> None:
    """Kubernetes label syntax; the prefixes Kubernetes and hybrid-knative manage are refused."""
    prefix, slash, name = key.rpartition("/")
    if (slash and (not prefix or len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))) \
            or not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ConfigError(f"invalid label key {key[:100]!r}",
                          resolution="use [prefix/]name with letters, digits, '-', '_', '.' (name ≤ 63)")
    if slash and any(prefix == p or prefix.endswith("." + p) for p in _RESERVED_PREFIXES):
        raise ConfigError(f"label key {key!r} uses a reserved prefix",
                          resolution="kubernetes.io, k8s.io and hybrid-knative.io labels are set by the system")
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ConfigError(f"invalid label value {value[:100]!r} for {key}",
                          resolution="at most 63 letters, digits, '-', '_', '.'; start and end alphanumeric")


def parse_labels(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``k=v`` items (also comma-separated) → a validated dict."""
    labels: dict[str, str] = {}
    for item in items:
        for part in (p for p in item.split(",") if p.strip()):
            key, eq, value = part.strip().partition("=")
            if not eq:
                raise ConfigError(f"label {part!r} is not KEY=VALUE")
            validate_label(key, value)
            labels[key] = value
    return labels


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    token_id: str
    created: float
    expires: float | None
    max_uses: int | None
    uses: int
    revoked: bool
    approval: bool
    labels: Mapping[str, str]
    description: str

    def status(self, now: float) -> str:
        if self.revoked:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used-up"
        return "valid"


@dataclasses.dataclass(frozen=True)
class EnrolmentInfo:
    enrolment_id: str
    token_id: str
    machine_id: str
    node_name: str
    arch: str
    state: EnrolmentState
    source: str
    created: float
    updated: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def _token_info(data: Mapping[str, Any]) -> TokenInfo:
    return TokenInfo(token_id=data["id"], created=data["created"], expires=data.get("expires"),
                     max_uses=data.get("max_uses"), uses=data.get("uses", 0), revoked=bool(data.get("revoked")),
                     approval=bool(data.get("approval")), labels=dict(data.get("labels") or {}),
                     description=str(data.get("description") or ""))


def _enrolment_info(data: Mapping[str, Any]) -> EnrolmentInfo:
    return EnrolmentInfo(enrolment_id=data["id"], token_id=data["token_id"], machine_id=data["machine_id"],
                         node_name=data["node_name"], arch=data["arch"], state=data["state"],
                         source=data.get("source", ""), created=data["created"], updated=data["updated"],
                         labels=dict(data.get("labels") or {}), annotations=dict(data.get("annotations") or {}))


T = TypeVar("T")


@dataclasses.dataclass
class _Change(Generic[T]):
    change: Callable[[dict[str, Any]], T]
    value: T | None = None
    error: Exception | None = None
    done: bool = False

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class HubState:
    """Transactions on the state file; every method is safe across threads and processes."""

    def __init__(self, folder: Path, *, clock: Clock = time.time) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        self.audit_path = folder / "audit.jsonl"  # security events: tokens, enrolments, refusals, labels
        self.noise_path = folder / "noise.jsonl"  # aggregated floods (rate limits, connection limits)
        self._lock_path = folder / "state.lock"
        self._thread_lock = threading.RLock()
        self._audit_lock = threading.Lock()  # the audit logs have their own (appends never wait on a state write)
        self._batch = threading.Condition()
        self._queue: list[_Change[Any]] = []
        self._committing = False
        self.clock = clock
        self._dummy_hash = hash_secret(secrets.token_hex(SECRET_HEX // 2))

    # --- storage -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str = "state.lock") -> Iterator[None]:
        lock = self._thread_lock if name == "state.lock" else self._audit_lock
        with lock:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.chmod(self.folder, 0o700)  # mkdir's mode is masked by umask (and 000 would leave 0777)
            fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _load(self) -> dict[str, Any]:
        return self._load_text()[0]

    def _load_text(self) -> tuple[dict[str, Any], str]:
        """The state and the text it was read from ("" when there is no file yet)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"schema": SCHEMA, "tokens": {}, "enrolments": {}}, ""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise ValueError("unknown schema")
        except ValueError as exc:
            raise PermanentError(f"the hub state file {self.path} is damaged: {exc}",
                                 resolution="restore it from a backup (tokens and enrolments are kept there)") from None
        data.setdefault("tokens", {})
        data.setdefault("enrolments", {})
        return data, raw

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        with self._locked():
            data, raw = self._load_text()
            yield data
            text = json.dumps(data, indent=1, sort_keys=True) + "\n"
            if text != raw:  # (this is how it is written: no deep copy needed to see a change)
                atomic_write(self.path, text, mode=0o600)

    def apply(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Run ``change`` on the state in a transaction shared with the changes other threads make at the
        same moment (group commit): one write, one fsync for all of them, in arrival order. Returns when
        the write is on disk; a change that raises is left out (the others are applied without it)."""
        mine = _Change(change)
        with self._batch:
            self._queue.append(mine)
            while not mine.done and self._committing:
                self._batch.wait()
            if mine.done:
                return mine.outcome()
            self._committing = True
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            with self._batch:
                self._committing = False
                self._batch.notify_all()
        return mine.outcome()

    def _commit(self, batch: list[_Change[Any]]) -> None:
        try:
            with self._locked():
                data, raw = self._load_text()
                ok: list[_Change[Any]] = []
                for item in batch:
                    try:
                        item.value = item.change(data)
                        ok.append(item)
                    except Exception as exc:  # leave this change out: start again from the file without it
                        item.error = exc
                        data = self._load_text()[0]
                        for earlier in ok:
                            earlier.value = earlier.change(data)
                text = json.dumps(data, indent=1, sort_keys=True) + "\n"
                if text != raw:
                    atomic_write(self.path, text, mode=0o600)
        except Exception as exc:  # nothing was written: every change of the batch failed with it
            for item in batch:
                item.error = item.error or exc
        for item in batch:
            item.done = True

    def read(self) -> dict[str, Any]:
        """The last committed state, without the lock: every write replaces the file atomically, so a
        reader sees a whole state, old or new (the lock orders read-modify-write transactions only;
        readers queueing behind them was the hub's bottleneck in a burst of enrolments)."""
        return self._load()

    def audit(self, event: str, *, path: Path | None = None, **fields: Any) -> None:
        """Append one audit record (never a secret: callers pass ids, reasons and addresses only)."""
        record = {"time": round(self.clock(), 3), "event": event, **fields}
        line = json.dumps(record, sort_keys=True) + "\n"
        target = path or self.audit_path
        with self._locked("audit.lock"):
            if target.exists() and target.stat().st_size > MAX_AUDIT_BYTES:
                os.replace(target, target.with_suffix(".jsonl.1"))
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    def audit_records(self, path: Path | None = None) -> list[dict[str, Any]]:
        try:
            text = (path or self.audit_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def noise_records(self) -> list[dict[str, Any]]:
        return self.audit_records(self.noise_path)

    # --- tokens ----------------------------------------------------------------------------------

    def create_token(self, *, ttl: float | None, max_uses: int | None, labels: Mapping[str, str],
                     approval: bool = False, description: str = "", now: float | None = None) -> Token:
        if ttl is not None and ttl <= 0:
            raise ConfigError("the token lifetime must be positive")
        if max_uses is not None and max_uses < 1:
            raise ConfigError("the token must allow at least one use")
        for key, value in labels.items():
            validate_label(key, value)
        created = self.clock() if now is None else now
        token = Token(secrets.token_hex(TOKEN_ID_HEX // 2), secrets.token_hex(SECRET_HEX // 2))
        with self.transaction() as data:
            data["tokens"][token.token_id] = {
                "id": token.token_id, "hash": hash_secret(token.secret), "created": created,
                "expires": None if ttl is None else created + ttl, "max_uses": max_uses, "uses": 0,
                "revoked": False, "approval": approval, "labels": dict(labels), "description": description[:200],
            }
        self.audit("token-created", token_id=token.token_id, max_uses=max_uses, ttl=ttl, approval=approval)
        return token

    def tokens(self) -> list[TokenInfo]:
        data = self.read()
        return sorted((_token_info(t) for t in data["tokens"].values()), key=lambda t: t.created)

    def revoke_token(self, token_id: str) -> TokenInfo:
        with self.transaction() as data:
            record = data["tokens"].get(token_id)
            if record is None:
                raise ConfigError(f"no token with id {token_id[:40]!r}", resolution="see `hybrid-knative token list`")
            record["revoked"] = True
            info = _token_info(record)
        self.audit("token-revoked", token_id=token_id)
        return info

    def delete_token(self, token_id: str) -> None:
        """Forget a token that was never handed out (e.g. its launch configuration failed)."""
        with self.transaction() as data:
            data["tokens"].pop(token_id, None)
        self.audit("token-deleted", token_id=token_id)

    def check_token(self, data: Mapping[str, Any], token: Token, now: float) -> RefusalReason | None:
        """None when the token may be used now; else why not. Constant-time in the secret."""
        record = data["tokens"].get(token.token_id)
        expected = record["hash"] if record is not None else self._dummy_hash
        matches = hmac.compare_digest(expected, hash_secret(token.secret))
        if record is None:
            return "unknown"
        if not matches:
            return "wrong-secret"
        status = _token_info(record).status(now)
        return None if status == "valid" else status  # type: ignore[return-value]

    def hub_proof_key(self, token_id: str) -> bytes:
        """Key the hub proves token knowledge with (the stored hash; a random key for unknown ids)."""
        data = self.read()
        record = data["tokens"].get(token_id)
        digest = record["hash"] if record is not None else hmac.new(
            self._hello_key(), token_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
        return bytes.fromhex(digest)

    def _hello_key(self) -> bytes:
        """A persistent random key for unknown ids: their proof must not change when the hub restarts
        (a changing answer would tell an observer the id does not exist)."""
        path = self.folder / "hello.key"
        with self._locked():
            try:
                text = path.read_text(encoding="ascii").strip()
                if _HELLO_KEY.fullmatch(text):
                    return bytes.fromhex(text)
            except (OSError, UnicodeDecodeError):
                pass
            key = secrets.token_hex(32)
            atomic_write(path, key + "\n", mode=0o600)
            return bytes.fromhex(key)

    # --- enrolments ------------------------------------------------------------------------------

    def enrolments(self) -> list[EnrolmentInfo]:
        data = self.read()
        return sorted((_enrolment_info(e) for e in data["enrolments"].values()), key=lambda e: e.created)

    def enrolment(self, enrolment_id: str) -> EnrolmentInfo | None:
        record = self.read()["enrolments"].get(enrolment_id)
        return _enrolment_info(record) if record is not None else None

    def approve(self, enrolment_id: str) -> EnrolmentInfo:
        if not _ENROLMENT_ID.match(enrolment_id):
            raise ConfigError(f"not an enrolment id: {enrolment_id[:40]!r}",
                              resolution="use an ID from `hybrid-knative nodes list` (12 hex characters)")
        with self.transaction() as data:
            record = data["enrolments"].get(enrolment_id)
            if record is None:
                raise ConfigError(f"no enrolment {enrolment_id}", resolution="see `hybrid-knative nodes list`")
            if record["state"] == "pending":
                record["state"] = "approved"
                record["updated"] = self.clock()
            info = _enrolment_info(record)
        self.audit("enrolment-approved", enrolment_id=enrolment_id, token_id=info.token_id, node=info.node_name)
        return info

    def set_enrolment_state(self, enrolment_id: str, state: EnrolmentState, **extra: Any) -> None:
        with self.transaction() as data:
            record = data["enrolments"].get(enrolment_id)
            if record is not None:
                record["state"] = state
                record["updated"] = self.clock()
                record.update(extra)


class NoiseCounter:
    """Refusals an attacker can cause at will (rate limits, connection limits): counted per kind and
    source, written as ONE record per interval to ``noise.jsonl`` — never into the audit log, so a
    flood can neither rotate the security history away nor fill the disk."""

    def __init__(self, state: HubState, *, interval: float = NOISE_INTERVAL,
                 clock: Clock = time.monotonic) -> None:
        self.state, self.interval, self.clock = state, interval, clock
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._others: dict[str, int] = {}
        self._since = clock()

    def count(self, kind: str, source: str) -> None:
        with self._lock:
            per_source = self._counts.setdefault(kind, {})
            if source in per_source or sum(len(c) for c in self._counts.values()) < MAX_NOISE_SOURCES:
                per_source[source] = per_source.get(source, 0) + 1
            else:
                self._others[kind] = self._others.get(kind, 0) + 1
            due = self.clock() - self._since >= self.interval
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, others = self._counts, self._others
            self._counts, self._others, self._since = {}, {}, self.clock()
        if counts or others:
            totals = {k: sum(v.values()) + others.get(k, 0) for k, v in counts.items()}
            for kind, n in others.items():
                totals.setdefault(kind, n)
            with contextlib.suppress(OSError):
                self.state.audit("refusals", path=self.state.noise_path, totals=totals, sources=counts,
                                 unnamed_sources=others)
