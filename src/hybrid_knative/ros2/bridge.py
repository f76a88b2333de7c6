"""The bridge: ROS 2 topics (DDS, via cyclonedds) ⇄ CloudEvents (HTTP, via a Knative Broker).

Data flow, one process::

    DDS reader ─┐ rate limit / decimation ─ encode (JSON | CDR | claim check) ─ OutBuffer ─ Sender ─▶ Broker
                └ WaitSet thread                                      (bounded)   (retries)
    Trigger ─▶ HTTP sink POST /reply ─ parse + check ─ [reorder by sequence] ─ DDS writer (reply topic)
               GET /healthz /metrics /blobs/<sha256>

Nothing a peer sends can crash it: malformed events are answered 4xx and counted; a Broker that is
down fills the bounded buffer (oldest dropped and counted, memory capped in events and bytes) and
the buffer drains when it comes back.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import heapq
import http.client
import http.server
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from hybrid_knative.errors import ConfigError
from hybrid_knative.ros2 import typehash
from hybrid_knative.ros2.cloudevent import CloudEvent, EventError, from_http, to_binary
from hybrid_knative.ros2.msgtypes import (
    MessageError,
    TypeRegistry,
    dds_topic_name,
    event_type,
    validate_topic,
)
from hybrid_knative.ros2.spec import BridgeSpec, QosSpec, TopicSpec

log = logging.getLogger("hybrid_knative.ros2")

REPLY_TYPE = "org.ros2.reply"  # CloudEvent type of replies; the reply Trigger filters on it
EXT_BRIDGE = "ros2bridge"
EXT_REPLY_TO = "ros2replyto"
EXT_SEQUENCE = "sequence"
EXT_CLAIM = "ros2claimcheck"
CDR = "application/cdr"
JSON = "application/json"
_RATE_WINDOW = 10.0
_MAX_ERRORS = 10
_DRAIN_LIMIT = 4 * 1024 * 1024
_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def cyclonedds_uri(interface: str | None) -> str | None:
    """CYCLONEDDS_URI that pins DDS to one interface (name or address); None → cyclonedds picks."""
    if not interface:
        return None
    attr = "address" if any(c in interface for c in ".:") else "name"
    return (
        "<CycloneDDS><Domain><General><Interfaces>"
        f'<NetworkInterface {attr}="{interface}" multicast="default"/>'
        "</Interfaces></General></Domain></CycloneDDS>"
    )


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# --- statistics ---------------------------------------------------------------------------------


@dataclasses.dataclass
class TopicStats:
    received: int = 0
    forwarded: int = 0
    dropped_rate: int = 0
    dropped_buffer: int = 0
    dropped_oversize: int = 0
    claim_checked: int = 0
    delivered: int = 0
    replies: int = 0
    recent: collections.deque[float] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=4096))

    def rate(self, now: float) -> float:
        times = tuple(self.recent)  # one C-level copy: other threads append meanwhile
        n = sum(1 for t in times if now - t <= _RATE_WINDOW)
        return round(n / _RATE_WINDOW, 3)

    def counters(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("recent", "replies")}


class ErrorLog:
    """The last few errors, for /metrics and `status` (never message contents or secrets)."""

    def __init__(self) -> None:
        self._items: collections.deque[dict[str, str]] = collections.deque(maxlen=_MAX_ERRORS)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, where: str, message: str) -> None:
        with self._lock:
            self.count += 1
            self._items.append({"time": _now_rfc3339(), "where": where, "error": message[:300]})
        log.warning("%s: %s", where, message)

    def items(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._items)


# --- outgoing buffer + sender ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outgoing:
    topic: str
    headers: dict[str, str]
    body: bytes


class OutBuffer:
    """Bounded FIFO (events and bytes). When full, the oldest event is dropped (keep-last)."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: collections.deque[Outgoing] = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self.high_water_bytes = 0

    def put(self, item: Outgoing) -> list[Outgoing]:
        dropped: list[Outgoing] = []
        with self._cond:
            self._items.append(item)
            self._bytes += len(item.body)
            while len(self._items) > self.max_events or (self._bytes > self.max_bytes and len(self._items) > 1):
                old = self._items.popleft()
                self._bytes -= len(old.body)
                dropped.append(old)
            self.high_water_bytes = max(self.high_water_bytes, self._bytes)
            self._cond.notify()
        return dropped

    def peek(self, timeout: float) -> Outgoing | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items[0] if self._items else None

    def pop(self, item: Outgoing) -> None:
        with self._cond:
            if self._items and self._items[0] is item:
                self._items.popleft()
                self._bytes -= len(item.body)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def bytes(self) -> int:
        with self._cond:
            return self._bytes


class Sender(threading.Thread):
    """POSTs buffered events to the Broker ingress in order, keep-alive, retrying with backoff.

    2xx → delivered; 408/429/5xx and connection errors → retried (the event stays at the head);
    other 4xx → the Broker refuses this event: dropped and recorded as an error.
    """

    def __init__(self, url: str, buffer: OutBuffer, stats: dict[str, TopicStats], errors: ErrorLog) -> None:
        super().__init__(name="ros2-sender", daemon=True)
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"broker URL {url!r} is not an http(s) URL")
        self._scheme, self._host, self._port = parsed.scheme, parsed.hostname, parsed.port
        self._path = parsed.path or "/"
        self._buffer = buffer
        self._stats = stats
        self._errors = errors
        self._halt = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self.failures = 0
        self.broker_up: bool | None = None

    def stop(self) -> None:
        self._halt.set()
        self._buffer.wake()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=10)
        return self._conn

    def _post(self, item: Outgoing) -> int:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=item.body, headers=item.headers)
            response = conn.getresponse()
            response.read()
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                self._conn = None
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self._conn = None
            raise

    def run(self) -> None:
        attempt = 0
        while not self._halt.is_set():
            item = self._buffer.peek(0.5)
            if item is None:
                continue
            try:
                status = self._post(item)
            except (OSError, http.client.HTTPException) as exc:
                status, reason = 0, f"broker unreachable: {exc.__class__.__name__}: {exc}"
            else:
                reason = f"broker answered HTTP {status}"
            stats = self._stats[item.topic]
            if 200 <= status < 300:
                self._buffer.pop(item)
                stats.delivered += 1
                self.broker_up, attempt = True, 0
                continue
            if status and status not in (408, 429) and status < 500:
                self._buffer.pop(item)
                self._errors.add(f"send {item.topic}", f"{reason}; event dropped")
                attempt = 0
                continue
            self.failures += 1
            if attempt == 0 or self.broker_up:
                self._errors.add(f"send {item.topic}", f"{reason}; retrying ({len(self._buffer)} buffered)")
            self.broker_up = False
            self._halt.wait(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
            attempt += 1
        if self._conn is not None:
            self._conn.close()


# --- claim check --------------------------------------------------------------------------------


class BlobStore:
    """Messages too large for an event, kept in memory (bounded, oldest evicted) and served at
    ``GET /blobs/<sha256>`` by the bridge. The event carries the URL, size and digest."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._blobs: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str | None:
        if len(data) > self.max_bytes:
            return None
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest in self._blobs:
                self._blobs.move_to_end(digest)
                return digest
            self._blobs[digest] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._blobs.popitem(last=False)
                self._bytes -= len(old)
        return digest

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(digest)

    def __len__(self) -> int:
        with self._lock:
            return len(self._blobs)


# --- ordering -----------------------------------------------------------------------------------


class Reorderer:
    """Publishes replies in ``sequence`` order; a gap older than ``max_wait`` s (a lost or
    filtered reply) is skipped so one lost event never stalls the topic. Bounded by ``window``."""

    def __init__(self, publish: Callable[[Any], None], *, max_wait: float = 0.5, window: int = 256,
                 first: int = 1) -> None:
        self._publish = publish
        self._max_wait = max_wait
        self._window = window
        self._next: int | None = first  # the bridge numbers its events from 1 in each run
        self._heap: list[tuple[int, float, int, Any]] = []
        self._lock = threading.Lock()
        self._tie = 0
        self.skipped = 0
        self.late = 0

    def offer(self, seq: int, msg: Any, now: float) -> None:
        with self._lock:
            if self._next is None:
                self._next = seq
            if seq < self._next:
                self.late += 1  # arrived after its gap was skipped: publishing it now would reorder
                return
            self._tie += 1
            heapq.heappush(self._heap, (seq, now, self._tie, msg))
            self._drain(now)

    def tick(self, now: float) -> None:
        with self._lock:
            self._drain(now)

    def _drain(self, now: float) -> None:
        while self._heap:
            seq, arrived, _, msg = self._heap[0]
            assert self._next is not None
            if seq > self._next and now - arrived < self._max_wait and len(self._heap) <= self._window:
                return
            heapq.heappop(self._heap)
            if seq > self._next:
                self.skipped += seq - self._next
            if seq >= self._next:
                self._publish(msg)
                self._next = seq + 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap)


# --- the bridge ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Topic:
    spec: TopicSpec
    reader: Any
    condition: Any
    last_forward: float = 0.0
    count: int = 0
    seq: int = 0


@dataclasses.dataclass
class _Reply:
    topic: str
    msg_type: str
    writer: Any
    lock: threading.Lock
    reorder: Reorderer | None


class Bridge:
    """One bridge process. ``start()`` joins the DDS domain and serves HTTP; ``stop()`` leaves."""

    def __init__(
        self,
        spec: BridgeSpec,
        *,
        broker_url: str,
        name: str = "ros2-bridge",
        listen: tuple[str, int] = ("127.0.0.1", 8080),
        public_url: str | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.registry: TypeRegistry = spec.registry()
        for t in spec.topics:
            self.registry.check(t.type)
            self.registry.check(t.reply_msg_type)
        self.errors = ErrorLog()
        self.stats: dict[str, TopicStats] = {t.topic: TopicStats() for t in spec.topics}
        self.reply_stats: dict[str, TopicStats] = {}
        self.buffer = OutBuffer(spec.buffer_events, spec.buffer_bytes)
        self.sender = Sender(broker_url, self.buffer, self.stats, self.errors)
        self.blobs = BlobStore(spec.blob_bytes)
        self._listen = listen
        self._public_url = public_url
        self._run_id = secrets.token_hex(4)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._topics: list[_Topic] = []
        self._replies: dict[str, _Reply] = {}
        self._server: http.server.ThreadingHTTPServer | None = None
        self._participant: Any = None
        self._waitset: Any = None
        self.started_at = 0.0
        self.rejected_replies = 0
        self._count_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("bridge not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.started_at = time.time()
        self._participant = DomainParticipant(self.spec.domain_id)
        dp = self._participant
        self._waitset = WaitSet(dp)
        topics: dict[str, Any] = {}

        def topic(name: str, msg_type: str) -> Any:
            if name not in topics:
                topics[name] = Topic(dp, dds_topic_name(name), self.registry.struct(msg_type))
            return topics[name]

        for spec in self.spec.topics:
            # USER_DATA "typehash=RIHS01_…;" like rmw_cyclonedds on Iron+ (Humble peers ignore it)
            reader = DataReader(dp, topic(spec.topic, spec.type),
                                qos_for(spec.qos, typehash.user_data(self.registry, spec.type)))
            cond = ReadCondition(reader, ViewState.Any | InstanceState.Any | SampleState.NotRead)
            entry = _Topic(spec=spec, reader=reader, condition=cond)
            self._waitset.attach(cond)
            self._topics.append(entry)
            if spec.reply_to and spec.reply_to not in self._replies:
                writer = DataWriter(dp, topic(spec.reply_to, spec.reply_msg_type),
                                    qos_for(spec.qos, typehash.user_data(self.registry, spec.reply_msg_type)))
                reorder = Reorderer(self._publisher(writer, spec.reply_to)) if spec.ordered else None
                self._replies[spec.reply_to] = _Reply(spec.reply_to, spec.reply_msg_type, writer, threading.Lock(),
                                                      reorder)
                self.reply_stats[spec.reply_to] = TopicStats()
            elif spec.reply_to and spec.ordered and self._replies[spec.reply_to].reorder is None:
                reply = self._replies[spec.reply_to]
                reply.reorder = Reorderer(self._publisher(reply.writer, spec.reply_to))
        self._server = _make_server(self, self._listen)
        self.sender.start()
        for target, name in ((self._read_loop, "ros2-dds"), (self._server.serve_forever, "ros2-http"),
                             (self._tick_loop, "ros2-tick")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.sender.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in [*self._threads, self.sender]:
            if thread.is_alive():
                thread.join(timeout=5)
        self._participant = None  # cyclonedds deletes entities when they are collected

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- topic → event ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        from cyclonedds.internal import InvalidSample
        from cyclonedds.util import duration

        timeout = duration(milliseconds=200)
        while not self._stop.is_set():
            try:
                self._waitset.wait(timeout)
                for entry in self._topics:
                    for sample in entry.reader.take(N=64, condition=entry.condition):
                        if not isinstance(sample, InvalidSample):  # dispose/unregister notices carry no data
                            self._on_sample(entry, sample)
            except Exception as exc:  # a bad sample must not end the loop
                self.errors.add("dds", f"{exc.__class__.__name__}: {exc}")

    def _on_sample(self, entry: _Topic, sample: Any) -> None:
        spec, stats = entry.spec, self.stats[entry.spec.topic]
        now = time.monotonic()
        stats.received += 1
        stats.recent.append(now)
        entry.count += 1
        if (entry.count - 1) % spec.decimate:
            stats.dropped_rate += 1
            return
        if spec.rate is not None and entry.last_forward and now - entry.last_forward < 1.0 / spec.rate:
            stats.dropped_rate += 1
            return
        entry.last_forward = now
        outgoing = self.encode_event(entry, sample)
        if outgoing is None:
            return
        stats.forwarded += 1
        for old in self.buffer.put(outgoing):
            self.stats[old.topic].dropped_buffer += 1

    def encode_event(self, entry: _Topic, sample: Any) -> Outgoing | None:
        spec = entry.spec
        cdr = self.registry.encode(sample)
        body, content_type = cdr, CDR
        if spec.encoding == "json" or (spec.encoding == "auto" and not self.registry.has_binary(spec.type)):
            text = json.dumps(self.registry.to_jsonable(spec.type, sample), separators=(",", ":")).encode()
            if spec.encoding == "json" or len(text) <= self.spec.json_max_bytes:
                body, content_type = text, JSON
        entry.seq += 1
        attrs = {
            "id": f"{self.name}-{self._run_id}-{spec.topic.strip('/').replace('/', '.')}-{entry.seq}",
            "source": f"ros2://{self.spec.domain_id}{spec.topic}",
            "type": event_type(spec.type),
            "time": _now_rfc3339(),
            "datacontenttype": content_type,
            EXT_SEQUENCE: str(entry.seq),
            EXT_BRIDGE: self.name,
        }
        if spec.reply_to:
            attrs[EXT_REPLY_TO] = spec.reply_to
        if len(body) > self.spec.max_event_bytes:
            digest = self.blobs.put(cdr)
            stats = self.stats[spec.topic]
            if digest is None:
                stats.dropped_oversize += 1
                self.errors.add(f"topic {spec.topic}", f"message of {len(cdr)} bytes is larger than the event "
                                f"limit ({self.spec.max_event_bytes}) and the claim-check store "
                                f"({self.spec.blob_bytes}); dropped")
                return None
            stats.claim_checked += 1
            base = self._public_url or self.url
            body = json.dumps({"claimcheck": {"url": f"{base}/blobs/{digest}", "sha256": digest, "size": len(cdr),
                                              "datacontenttype": CDR}}, separators=(",", ":")).encode()
            attrs["datacontenttype"] = JSON
            attrs[EXT_CLAIM] = "true"
        return Outgoing(topic=spec.topic, headers=to_binary(attrs, body), body=body)

    # -- event → topic ---------------------------------------------------------------------------

    def _publisher(self, writer: Any, topic: str) -> Callable[[Any], None]:
        lock = threading.Lock()

        def publish(msg: Any) -> None:
            with lock:
                writer.write(msg)
                self.reply_stats[topic].replies += 1
                self.reply_stats[topic].recent.append(time.monotonic())

        return publish

    def handle_reply(self, event: CloudEvent) -> tuple[int, str]:
        """Check a reply event and publish it. Returns (HTTP status, reason)."""
        if event.type != REPLY_TYPE:
            return 400, f"event type {event.type!r} is not {REPLY_TYPE}"
        bridge = event.get(EXT_BRIDGE)
        if bridge is not None and bridge != self.name:
            return 400, f"reply addressed to bridge {bridge!r}, this is {self.name!r}"
        target = event.get(EXT_REPLY_TO)
        if target is None:
            if len(self._replies) != 1:
                return 400, f"the reply names no topic ({EXT_REPLY_TO}) and this bridge has {len(self._replies)}"
            target = next(iter(self._replies))
        try:
            validate_topic(target)
        except ConfigError:
            return 400, f"{EXT_REPLY_TO} {target!r} is not a ROS 2 topic name"
        reply = self._replies.get(target)
        if reply is None:
            return 404, f"{target} is not a reply topic of this bridge"
        content_type = event.content_type.split(";")[0].strip().lower()
        try:
            if content_type in (JSON, "text/json") or content_type.endswith("+json"):
                try:
                    data = json.loads(event.data)
                except (ValueError, UnicodeDecodeError):
                    return 400, "the reply body is not JSON"
                msg = self.registry.from_jsonable(reply.msg_type, data)
            elif content_type == CDR:
                msg = self.registry.decode(reply.msg_type, event.data)
            else:
                return 415, f"reply content type {content_type!r}: use application/json or {CDR}"
        except MessageError as exc:
            return 400, f"reply does not fit {reply.msg_type}: {exc}"
        seq_text = event.get(EXT_SEQUENCE)
        if reply.reorder is not None and seq_text is not None:
            if not seq_text.isdigit():
                return 400, f"{EXT_SEQUENCE} {seq_text!r} is not a non-negative integer"
            reply.reorder.offer(int(seq_text), msg, time.monotonic())
        else:
            self._publisher(reply.writer, target)(msg)
        return 202, "published"

    def count_rejected(self) -> None:
        with self._count_lock:
            self.rejected_replies += 1

    def _tick_loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            for reply in self._replies.values():
                if reply.reorder is not None:
                    try:
                        reply.reorder.tick(now)
                    except Exception as exc:
                        self.errors.add(f"reply {reply.topic}", f"{exc.__class__.__name__}: {exc}")

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        degraded = self.sender.broker_up is False
        return {
            "bridge": self.name,
            "status": "degraded" if degraded else "ok",
            "domain_id": self.spec.domain_id,
            "uptime_s": round(time.time() - self.started_at, 1) if self.started_at else 0.0,
            "broker_up": self.sender.broker_up,
            "buffer": {"events": len(self.buffer), "bytes": self.buffer.bytes, "max_events": self.buffer.max_events,
                       "max_bytes": self.buffer.max_bytes, "high_water_bytes": self.buffer.high_water_bytes},
            "blobs": len(self.blobs),
            "topics": [
                {"topic": t.spec.topic, "type": t.spec.type, "reply_to": t.spec.reply_to, "rate": s.rate(now),
                 "publishers": _matched(t.reader),
                 **s.counters()}
                for t in self._topics for s in [self.stats[t.spec.topic]]
            ],
            "replies": [
                {"topic": topic, "type": r.msg_type, "published": self.reply_stats[topic].replies,
                 "rate": self.reply_stats[topic].rate(now),
                 "reorder_pending": len(r.reorder) if r.reorder else 0,
                 "skipped": r.reorder.skipped if r.reorder else 0}
                for topic, r in self._replies.items()
            ],
            "rejected_replies": self.rejected_replies,
            "errors": self.errors.items(),
            "error_count": self.errors.count,
        }


def _matched(reader: Any) -> int:
    """How many DDS writers this reader is matched with (0 often means a QoS mismatch)."""
    try:
        return len(reader.get_matched_publications())
    except Exception:  # the entity is being deleted
        return -1


def qos_for(qos: QosSpec, user_data: bytes = b"") -> Any:
    """The DDS QoS of a topic's reader or writer; ``user_data`` goes into USER_DATA (the REP-2011 type hash)."""
    from cyclonedds.core import Policy
    from cyclonedds.qos import Qos
    from cyclonedds.util import duration

    reliability = (Policy.Reliability.Reliable(duration(milliseconds=100)) if qos.reliability == "reliable"
                   else Policy.Reliability.BestEffort)
    durability = Policy.Durability.TransientLocal if qos.durability == "transient_local" else Policy.Durability.Volatile
    policies = [reliability, durability, Policy.History.KeepLast(qos.depth)]
    if user_data:
        policies.append(Policy.Userdata(user_data))
    return Qos(*policies)


# --- HTTP ---------------------------------------------------------------------------------------


def _make_server(bridge: Bridge, listen: tuple[str, int]) -> http.server.ThreadingHTTPServer:
    max_body = bridge.spec.max_event_bytes

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
        server_version = "hybrid-knative-ros2"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

        def _send(self, status: int, payload: Any, content_type: str = JSON) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                h = bridge.health()
                self._send(200, {"status": h["status"], "bridge": bridge.name})
            elif path == "/metrics":
                self._send(200, bridge.health())
            elif path.startswith("/blobs/"):
                digest = path[len("/blobs/"):]
                data = bridge.blobs.get(digest) if len(digest) == 64 else None
                if data is None:
                    self._send(404, {"error": "no such blob (expired or never stored)"})
                else:
                    self._send(200, data, CDR)
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length_text = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
                self.close_connection = True
                self._send(411, {"error": "Content-Length required"})
                return
            length = int(length_text)
            if length > max_body:
                self.close_connection = True
                remaining = min(length, _DRAIN_LIMIT)  # read what was sent so closing does not reset the peer
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                bridge.rejected_replies += 1
                bridge.errors.add("reply", f"reply of {length} bytes is larger than {max_body}; refused")
                self._send(413, {"error": f"larger than {max_body} bytes"})
                return
            body = self.rfile.read(length)
            if path not in ("/", "/reply"):
                self._send(404, {"error": "not found"})
                return
            try:
                event = from_http(dict(self.headers.items()), body)
                status, reason = bridge.handle_reply(event)
            except EventError as exc:
                status, reason = 400, str(exc)
            except Exception as exc:  # never let a peer's input kill the handler thread silently
                status, reason = 500, f"{exc.__class__.__name__}: {exc}"
            if status >= 300:
                bridge.count_rejected()
                bridge.errors.add("reply", reason)
                self._send(status, {"error": reason})
            else:
                self._send(status, {"status": reason})

    server = http.server.ThreadingHTTPServer(listen, Handler)
    server.daemon_threads = True
    return server


def apply_interface_env(interface: str | None, environ: dict[str, str] | None = None) -> None:
    """Set CYCLONEDDS_URI for an interface unless the environment already has one (before joining)."""
    env = os.environ if environ is None else environ
    uri = cyclonedds_uri(interface)
    if uri and "CYCLONEDDS_URI" not in env:
        env["CYCLONEDDS_URI"] = uri
