"""The device agent: preflight → discovery → pinned enrolment → `microk8s join URL --worker`.

Security: the device never trusts the network. It fetches the hub's CA over TLS, checks its
SHA-256 against the pinned fingerprint (from the hk1: string, or from mDNS when discovering),
then talks to the hub only over TLS verified against that CA. Before sending its token it asks
the hub to prove it knows the token (an HMAC over a fresh nonce and the CA fingerprint), so a
rogue hub advertising its own fingerprint over mDNS learns nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import json
import math
import platform
import random
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import ConfigError, HybridError, PermanentError, TemporaryError
from hybrid_knative.join import protocol
from hybrid_knative.join.enrolment import Enrolment, HubAddress, Token
from hybrid_knative.progress import Status
from hybrid_knative.system import gpu
from hybrid_knative.system.runner import Runner

MIN_WORKER_MEMORY_MB = 512  # MicroK8s forces --worker at ≤ 512 MB; below that a worker cannot run pods
ARCH_OF = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390x",
           "ppc64le": "ppc64le"}
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
MAX_FILE_BYTES = 64 * 1024  # any file the agent reads (meminfo, machine-id, the enrolment file)


class RefusedError(PermanentError):
    """The hub refused the token (uniformly: it does not say why)."""


class HubIdentityError(PermanentError):
    """The hub's certificate or proof does not match the pin: possibly an impersonator."""


class PendingApproval(TemporaryError):
    def __init__(self, enrolment_id: str) -> None:
        super().__init__(f"waiting for approval of enrolment {enrolment_id}",
                         resolution=f"on the hub: sudo hybrid-knative nodes approve {enrolment_id}")
        self.enrolment_id = enrolment_id


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": a delay in [cap/2, cap], cap doubling up to ``maximum``."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        cap = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return cap / 2 + rand() * cap / 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    machine_id: str
    node_name: str
    arch: str
    memory_mb: int
    gpu: gpu.GpuReport

    def request(self) -> dict[str, Any]:
        return {"machine_id": self.machine_id, "node_name": self.node_name, "arch": self.arch,
                "memory_mb": self.memory_mb, "gpu": self.gpu.to_dict()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentSettings:
    enrolment: Enrolment | None = None  # the hk1: string; or discovery:
    token: Token | None = None
    cluster: str | None = None
    ca_fingerprint: str | None = None  # optional pin when discovering
    snap: SnapPaths = dataclasses.field(default_factory=SnapPaths)
    microk8s: str = "microk8s"
    host_root: Path = Path("/")
    node_name: str | None = None
    machine_id: str | None = None
    interfaces: tuple[str, ...] = ()
    discovery_timeout: float = 10.0
    timeout: float | None = 600.0  # overall; None = forever (agent mode)
    backoff: Backoff = Backoff()
    request_timeout: float = 15.0
    join_timeout: float = 300.0
    min_memory_mb: int = MIN_WORKER_MEMORY_MB

    def __post_init__(self) -> None:
        if (self.enrolment is None) == (self.token is None):
            raise ConfigError("give either an hk1: enrolment string, or --discover with --token")
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError("--timeout must be a positive finite number of seconds")
        for name in ("discovery_timeout", "request_timeout", "join_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name.replace('_', ' ')} must be a positive finite number of seconds")
        backoff = (self.backoff.initial, self.backoff.maximum, self.backoff.factor)
        if not all(math.isfinite(v) and v > 0 for v in backoff):
            raise ConfigError("the backoff must be positive finite numbers of seconds")
        if self.machine_id is not None and not _MACHINE_ID.fullmatch(self.machine_id):
            raise ConfigError("--machine-id must be 32 lowercase hex characters")

    @property
    def clustered_lock(self) -> Path:
        """MicroK8s creates this when the node joins a cluster (and refuses status/enable on workers)."""
        return self.snap.snap_data / "var" / "lock" / "clustered.lock"


@dataclasses.dataclass(frozen=True)
class JoinOutcome:
    already_joined: bool
    node_name: str
    enrolment_id: str | None = None
    hub: str | None = None
    attempts: int = 0


# --- preflight -----------------------------------------------------------------------------------------


def gather_facts(settings: AgentSettings) -> DeviceFacts:
    root = settings.host_root
    arch = ARCH_OF.get(platform.machine().lower())
    if arch is None:
        raise PermanentError(f"this device's architecture ({platform.machine()}) is not supported by MicroK8s",
                             resolution="MicroK8s runs on amd64, arm64, s390x and ppc64le")
    memory_mb = _memory_mb(root / "proc" / "meminfo")
    machine_id = settings.machine_id or _machine_id(root / "etc" / "machine-id")
    node_name = (settings.node_name or socket.gethostname()).strip().lower()
    return DeviceFacts(machine_id=machine_id, node_name=node_name, arch=arch, memory_mb=memory_mb,
                       gpu=gpu.detect(root))


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """At most ``limit`` bytes of a file (``/dev/zero`` included); longer files are refused."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{path} is larger than {limit} bytes", resolution="pass the right file")
    return data.decode("utf-8", errors="replace")


def _memory_mb(meminfo: Path) -> int:
    try:
        for line in read_bounded(meminfo).splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError, ConfigError):
        pass
    raise PermanentError(f"cannot read the device's memory size from {meminfo}")


def _machine_id(path: Path) -> str:
    try:
        value = read_bounded(path).strip()
    except (OSError, ConfigError):
        value = ""
    if not _MACHINE_ID.fullmatch(value):
        raise PermanentError(f"no valid machine id in {path}",
                             resolution="run `systemd-machine-id-setup`, or pass --machine-id")
    return value


def preflight(settings: AgentSettings, runner: Runner, status: Status) -> DeviceFacts | None:
    """The facts to enrol with, or None when this device is already part of a cluster."""
    with status.step("preflight: MicroK8s installed, not clustered, memory, architecture"):
        if settings.clustered_lock.exists():
            return None
        result = runner.run([settings.microk8s, "version"], check=False, timeout=60)
        if result.returncode != 0:
            raise PermanentError("MicroK8s is not installed or not working on this device",
                                 details=(result.stderr or result.stdout).strip()[-500:] or None,
                                 resolution="sudo snap install microk8s --classic")
        facts = gather_facts(settings)
        if facts.memory_mb < settings.min_memory_mb:
            raise PermanentError(f"this device has {facts.memory_mb} MB of RAM; a worker needs at least "
                                 f"{settings.min_memory_mb} MB", resolution="use a device with more memory")
        status.detail(f"{facts.node_name}: {facts.arch}, {facts.memory_mb} MB, GPU {facts.gpu.state}")
        return facts


# --- talking to the hub --------------------------------------------------------------------------------


MAX_REPLY_DEPTH = 32  # a hub's replies are flat; anything deeper is refused before parsing


def parse_reply(raw: bytes) -> dict[str, Any]:
    """A hub's JSON reply, or {} when it is too large, too deep, or not a JSON object. Never raises."""
    if len(raw) > protocol.MAX_BODY or _depth(raw) > MAX_REPLY_DEPTH:
        return {}
    try:
        payload = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _depth(raw: bytes) -> int:
    """Bracket nesting, outside strings (an upper bound of the JSON depth; linear, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class HubClient:
    """HTTPS to one hub address, pinned to the CA fingerprint. Every request has a whole deadline
    (connect, TLS, sending, every byte of the reply, any number of ``100 Continue``): at most
    ``timeout`` seconds, and never past ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, address: HubAddress, fingerprint: str, *, timeout: float,
                 deadline: float | None = None) -> None:
        self.address, self.fingerprint, self.timeout, self.deadline = address, fingerprint, timeout, deadline
        self._verified: ssl.SSLContext | None = None

    def _budget(self) -> float:
        budget = self.timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
        if budget <= 0:
            raise TemporaryError(f"no time left to ask the hub at {self.address}")
        return budget

    def _request(self, ctx: ssl.SSLContext, method: str, path: str, body: Any | None) -> tuple[int, Any]:
        budget = self._budget()
        conn = http.client.HTTPSConnection(self.address.host, self.address.port, context=ctx, timeout=budget)
        expired = threading.Event()

        def cut() -> None:  # the whole request is late: unblock whatever read or write it is in
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        watchdog = threading.Timer(budget, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            data = None if body is None else json.dumps(body).encode("utf-8")
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(protocol.MAX_BODY + 1)
        except ssl.SSLCertVerificationError as exc:
            raise HubIdentityError(f"the hub at {self.address} presented a certificate not signed by the pinned CA",
                                   details=str(exc.verify_message or exc),
                                   resolution="someone may be impersonating the hub; check the enrolment string") \
                from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            why = f"no complete answer within {budget:.0f}s" if expired.is_set() else str(exc)[:200]
            raise TemporaryError(f"cannot reach the hub at {self.address}: {why}",
                                 resolution="check that the hub runs and the network is up; retrying") from None
        finally:
            watchdog.cancel()
            conn.close()
        if expired.is_set():
            raise TemporaryError(f"the hub at {self.address} did not answer within {budget:.0f}s")
        return resp.status, parse_reply(raw)

    def verified_context(self) -> ssl.SSLContext:
        """Fetch the CA over TLS without trusting it, check the pin, then trust only that CA."""
        if self._verified is not None:
            return self._verified
        insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        insecure.minimum_version = ssl.TLSVersion.TLSv1_2
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        code, payload = self._request(insecure, "GET", protocol.PATH_CA, None)
        pem = payload.get("ca") if code == 200 else None
        if not isinstance(pem, str) or len(pem) > 16_384:
            raise TemporaryError(f"the hub at {self.address} did not send its CA certificate (HTTP {code})")
        try:
            der = ssl.PEM_cert_to_DER_cert(pem)
        except ValueError:
            raise HubIdentityError(f"the hub at {self.address} sent a malformed CA certificate") from None
        if not hmac.compare_digest(hashlib.sha256(der).hexdigest(), self.fingerprint):
            raise HubIdentityError(
                f"the hub at {self.address} is not the hub of this enrolment: its CA fingerprint does not match",
                resolution="someone may be impersonating the hub on the LAN; check the enrolment string "
                "(`hybrid-knative token create` on the real hub prints it)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # pinned to a CA of our own, which signs only the hub
        ctx.load_verify_locations(cadata=pem)
        self._verified = ctx
        return ctx

    def prove_hub(self, token: Token) -> None:
        """The hub must show it knows the token before the device reveals the secret."""
        nonce = secrets.token_hex(16)
        code, payload = self._request(self.verified_context(), "POST", protocol.PATH_HELLO,
                                      {"token_id": token.token_id, "nonce": nonce})
        if code == 429 or code >= 500:
            raise TemporaryError(f"the hub at {self.address} is busy (HTTP {code})")
        key = bytes.fromhex(hashlib.sha256(token.secret.encode("ascii")).hexdigest())
        expected = protocol.hub_proof(key, self.fingerprint, nonce)
        proof = payload.get("proof")
        if code != 200 or not isinstance(proof, str) or not hmac.compare_digest(proof, expected):
            raise HubIdentityError(f"the hub at {self.address} could not prove it issued this token",
                                   resolution="the token may be wrong or revoked, or the hub is an impostor; "
                                   "ask the hub's operator for a fresh enrolment string")

    def enrol(self, token: Token, facts: DeviceFacts) -> dict[str, Any]:
        code, payload = self._request(self.verified_context(), "POST", protocol.PATH_ENROL,
                                      {"token": str(token), "device": facts.request()})
        if code == 200 and payload.get("status") == "join":
            urls = payload.get("join_urls")
            if isinstance(urls, list) and urls and all(isinstance(u, str) and protocol.valid_join_url(u)
                                                       for u in urls):
                return dict(payload)
            raise TemporaryError(f"the hub at {self.address} answered without a usable join URL")
        if code == 202 and payload.get("status") == "pending":
            raise PendingApproval(str(payload.get("enrolment", "?"))[:12])
        if code == 409:
            raise PermanentError(f"the hub will not enrol this device: {str(payload.get('error', code))[:200]}",
                                 resolution="see `hybrid-knative nodes` on the hub")
        if code == 403:
            raise RefusedError("the hub refused the token (unknown, wrong, expired, used up or revoked)",
                               resolution="ask the hub's operator for a fresh one: `hybrid-knative token create`")
        if code in (400, 411, 413, 415):
            raise PermanentError(f"the hub rejected the request: {str(payload.get('error', code))[:200]}",
                                 resolution="update hybrid-knative on this device to the hub's version")
        raise TemporaryError(f"the hub at {self.address} answered HTTP {code}")


# --- the flow ------------------------------------------------------------------------------------------


def _targets(settings: AgentSettings, status: Status) -> tuple[Token, str, tuple[HubAddress, ...]]:
    if settings.enrolment is not None:
        e = settings.enrolment
        return e.token, e.ca_fingerprint, e.hubs
    from hybrid_knative.join.mdns import discover_one

    assert settings.token is not None
    with status.step("discover the hub by mDNS"):
        hub = discover_one(timeout=settings.discovery_timeout, cluster=settings.cluster,
                           interfaces=settings.interfaces)
        status.detail(f"found {hub.cluster} at {', '.join(map(str, hub.addresses))}")
    if settings.ca_fingerprint is not None and hub.fingerprint != settings.ca_fingerprint:
        raise HubIdentityError("the hub found by mDNS has another CA fingerprint than --ca-fingerprint",
                               resolution="someone may be impersonating the hub on the LAN")
    return settings.token, hub.fingerprint, hub.addresses


def attempt(settings: AgentSettings, facts: DeviceFacts, runner: Runner, status: Status,
            deadline: float | None = None) -> tuple[str, str]:
    """One full try (discover, enrol, join); returns (enrolment id, hub). Raises typed errors.
    Nothing in it runs past ``deadline`` (``time.monotonic()``; None: no overall limit)."""
    token, fingerprint, hubs = _targets(settings, status)
    last: HybridError | None = None
    for address in hubs:
        client = HubClient(address, fingerprint, timeout=settings.request_timeout, deadline=deadline)
        try:
            with status.step(f"verify the hub at {address} (CA pinned) and enrol"):
                client.prove_hub(token)
                answer = client.enrol(token, facts)
        except TemporaryError as exc:
            last = exc
            if isinstance(exc, PendingApproval):
                raise
            continue
        urls: list[str] = answer["join_urls"]
        with status.step("microk8s join (worker)"):
            for url in urls:
                try:
                    left = settings.join_timeout if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise TemporaryError("no time left for microk8s join")
                    runner.run([settings.microk8s, "join", url, "--worker"],
                               timeout=min(settings.join_timeout, left))
                    return str(answer.get("enrolment", "")), str(address)
                except HybridError as exc:
                    # the command line holds the cluster secret: keep the exit code and output only
                    detail = getattr(exc, "details", None)
                    last = TemporaryError("microk8s join failed"
                                          f" (exit code {getattr(exc, 'returncode', '?')})", details=detail)
            assert last is not None
            raise last
    assert last is not None
    raise last


def run(settings: AgentSettings, *, runner: Runner | None = None, status: Status | None = None,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random) -> JoinOutcome:
    """Join this device: idempotent (already clustered → nothing to do), retries temporary failures."""
    runner = runner or Runner()
    status = status or Status(verbosity=-1)
    facts = preflight(settings, runner, status)
    if facts is None:
        status.info("this device is already part of a MicroK8s cluster: nothing to do")
        return JoinOutcome(already_joined=True, node_name=(settings.node_name or socket.gethostname()).lower())
    start = clock()
    deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
    tries = 0
    while True:
        tries += 1
        try:
            try:
                enrolment_id, hub = attempt(settings, facts, runner, status, deadline)
            except (ValueError, KeyError, TypeError, RecursionError, MemoryError) as exc:  # a hostile reply
                raise TemporaryError(f"the hub sent a reply this device cannot use ({type(exc).__name__})") from None
        except PendingApproval as exc:
            failure: HybridError = exc
            status.info(f"… {exc.brief}; {exc.resolution}")
        except TemporaryError as exc:
            failure = exc
            status.warn(f"{exc.brief}")
        else:
            status.info(f"joined the cluster as worker {facts.node_name}; the hub labels the node when it registers"
                        f" (check on the control plane: kubectl get node {facts.node_name} --show-labels)")
            return JoinOutcome(already_joined=False, node_name=facts.node_name, enrolment_id=enrolment_id,
                               hub=hub, attempts=tries)
        delay = settings.backoff.delay(tries - 1, rand)
        if settings.timeout is not None and clock() - start + delay > settings.timeout:
            raise PermanentError(f"gave up after {tries} attempts in {settings.timeout:g}s: {failure.brief}",
                                 details=failure.details, resolution=failure.resolution)
        status.detail(f"retrying in {delay:.1f}s")
        sleep(delay)


def parse_interfaces(values: Sequence[str]) -> tuple[str, ...]:
    import ipaddress

    out = []
    for value in values:
        try:
            out.append(str(ipaddress.IPv4Address(value)))
        except ValueError:
            raise ConfigError(f"--interface-address must be an IPv4 address, got {value[:60]!r}") from None
    return tuple(out)
