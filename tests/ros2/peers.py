"""Test peers of the ROS 2 bridge, each run as its own process inside the test's network namespace.

    python -m tests.ros2.peers pub   PLAN.json          ROS 2 publisher (cyclonedds), prints its CDR bytes
    python -m tests.ros2.peers sub   TOPIC TYPE N OUT    ROS 2 subscriber, writes received messages as JSON lines
    python -m tests.ros2.peers broker CONFIG.json       Broker ingress + Trigger dispatch + a function stand-in
    python -m tests.ros2.peers http  REQUESTS.json      plain HTTP client (answers as JSON on stdout)

The broker stand-in implements the Broker ingress contract: POST /<namespace>/<broker> with a
CloudEvent (parsed and validated by the independent `cloudevents` SDK), 202 on accept, 400 on a bad
event. It routes every accepted event through the *rendered* Trigger objects (exact attribute
filters, subscriber ref → a local URL, plus the ref's ``uri`` path) and, like Knative, ingests a
CloudEvent returned by a subscriber as a new event.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import http.server
import json
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

DEADLINE = 30.0


def _registry() -> Any:
    from hybrid_knative.ros2.msgtypes import TypeRegistry

    return TypeRegistry()


# --- ROS 2 side ---------------------------------------------------------------------------------


def _qos(reliable: bool = True, depth: int = 100) -> Any:
    from hybrid_knative.ros2.bridge import qos_for
    from hybrid_knative.ros2.spec import QosSpec

    return qos_for(QosSpec(reliability="reliable" if reliable else "best_effort", depth=depth))


def publish(plan_path: str) -> None:
    """PLAN: {"wait_readers": [topics], "messages": [{"topic", "type", "value", "sleep"}]}."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    from hybrid_knative.ros2.msgtypes import dds_topic_name

    plan = json.loads(Path(plan_path).read_text())
    registry = _registry()
    dp = DomainParticipant(int(plan.get("domain", 0)))
    writers: dict[str, Any] = {}
    for m in plan["messages"]:
        if m["topic"] not in writers:
            topic = Topic(dp, dds_topic_name(m["topic"]), registry.struct(m["type"]))
            writers[m["topic"]] = DataWriter(dp, topic, _qos(depth=1000))
    end = time.monotonic() + DEADLINE
    for name, writer in writers.items():
        while not writer.get_matched_subscriptions():
            if time.monotonic() > end:
                sys.exit(f"publisher: no reader matched {name}")
            time.sleep(0.02)
    # the writer sees the reader first; give the reader side time to match the writer too (volatile
    # readers do not get samples written before they matched)
    time.sleep(float(plan.get("settle", 1.0)))
    for m in plan["messages"]:
        value = registry.from_jsonable(m["type"], m["value"])
        writers[m["topic"]].write(value)
        print(json.dumps({"topic": m["topic"], "cdr": base64.b64encode(registry.encode(value)).decode()}), flush=True)
        if m.get("sleep"):
            time.sleep(m["sleep"])
    time.sleep(float(plan.get("linger", 1.0)))  # reliable delivery of the last samples before leaving


def subscribe(topic_name: str, msg_type: str, count: str, out: str) -> None:
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from hybrid_knative.ros2.msgtypes import dds_topic_name

    registry = _registry()
    dp = DomainParticipant(0)
    reader = DataReader(dp, Topic(dp, dds_topic_name(topic_name), registry.struct(msg_type)), _qos(depth=1000))
    cond = ReadCondition(reader, ViewState.Any | InstanceState.Any | SampleState.NotRead)
    ws = WaitSet(dp)
    ws.attach(cond)
    Path(out + ".ready").write_text("ready")
    got = 0
    end = time.monotonic() + DEADLINE
    with open(out, "a", encoding="utf-8") as fh:
        while got < int(count) and time.monotonic() < end:
            ws.wait(duration(milliseconds=100))
            for sample in reader.take(N=100, condition=cond):
                fh.write(json.dumps({"t": time.monotonic(), "value": registry.to_jsonable(msg_type, sample)}) + "\n")
                fh.flush()
                got += 1


def echo(in_topic: str, out_topic: str, lifetime: str) -> None:
    """A direct DDS echo (the benchmark's baseline): every String on in_topic is republished on out_topic."""
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.internal import InvalidSample
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from hybrid_knative.ros2.msgtypes import dds_topic_name

    registry = _registry()
    cls = registry.struct("std_msgs/msg/String")
    dp = DomainParticipant(0)
    reader = DataReader(dp, Topic(dp, dds_topic_name(in_topic), cls), _qos(depth=1000))
    writer = DataWriter(dp, Topic(dp, dds_topic_name(out_topic), cls), _qos(depth=1000))
    cond = ReadCondition(reader, ViewState.Any | InstanceState.Any | SampleState.NotRead)
    ws = WaitSet(dp)
    ws.attach(cond)
    end = time.monotonic() + float(lifetime)
    while time.monotonic() < end:
        ws.wait(duration(milliseconds=100))
        for sample in reader.take(N=100, condition=cond):
            if not isinstance(sample, InvalidSample):
                writer.write(cls(data="DETECTED:" + sample.data))


def rtt(plan_path: str) -> None:
    """PLAN: {"pairs": {"name": [out_topic, in_topic]}, "n": N, "burst": M} → JSON results on stdout.

    Per pair: N sequential round trips (one message in flight) → latencies; then M messages sent
    as fast as possible → the time until the last reply, as messages per second."""
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from hybrid_knative.ros2.msgtypes import dds_topic_name

    plan = json.loads(Path(plan_path).read_text())
    registry = _registry()
    cls = registry.struct("std_msgs/msg/String")
    dp = DomainParticipant(0)
    results: dict[str, Any] = {}
    for name, (out_topic, in_topic) in plan["pairs"].items():
        writer = DataWriter(dp, Topic(dp, dds_topic_name(out_topic), cls), _qos(depth=5000))
        reader = DataReader(dp, Topic(dp, dds_topic_name(in_topic), cls), _qos(depth=5000))
        cond = ReadCondition(reader, ViewState.Any | InstanceState.Any | SampleState.NotRead)
        ws = WaitSet(dp)
        ws.attach(cond)
        end = time.monotonic() + DEADLINE
        while not (writer.get_matched_subscriptions() and reader.get_matched_publications()):
            if time.monotonic() > end:
                sys.exit(f"rtt: {name} did not match")
            time.sleep(0.02)
        time.sleep(0.3)

        def wait_replies(count: int, deadline: float, ws: Any = ws, reader: Any = reader, cond: Any = cond) -> int:
            got = 0
            while got < count and time.monotonic() < deadline:
                ws.wait(duration(milliseconds=50))
                got += sum(1 for s in reader.take(N=500, condition=cond) if hasattr(s, "data"))
            return got

        latencies = []
        for i in range(int(plan["warmup"]) + int(plan["n"])):
            start = time.perf_counter()
            writer.write(cls(data=str(i)))
            if wait_replies(1, time.monotonic() + 5) != 1:
                sys.exit(f"rtt: {name}: reply {i} lost")
            if i >= int(plan["warmup"]):
                latencies.append((time.perf_counter() - start) * 1000)
        burst = int(plan["burst"])
        start = time.perf_counter()
        for i in range(burst):
            writer.write(cls(data=f"b{i}"))
        got = wait_replies(burst, time.monotonic() + 60)
        elapsed = time.perf_counter() - start
        results[name] = {"latencies_ms": latencies, "burst": burst, "replies": got, "seconds": elapsed}
    if plan.get("oneway"):
        topic_name, count = plan["oneway"]
        writer = DataWriter(dp, Topic(dp, dds_topic_name(topic_name), cls), _qos(depth=count))
        end = time.monotonic() + DEADLINE
        while not writer.get_matched_subscriptions() and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.3)
        results["oneway"] = {"start": time.monotonic(), "count": count}
        for i in range(count):
            writer.write(cls(data=f"o{i}"))
        time.sleep(1.0)
    print(json.dumps(results), flush=True)


# --- HTTP side ----------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
           headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


_CONNECTIONS = threading.local()


def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST with one keep-alive connection per thread and target (as Knative's dispatchers do)."""
    parts = urllib.parse.urlsplit(url)
    key = (parts.hostname or "127.0.0.1", parts.port)
    pool = _CONNECTIONS.__dict__.setdefault("pool", {})
    conn = pool.get(key) or http.client.HTTPConnection(key[0], key[1], timeout=10)
    pool[key] = conn
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        pool.pop(key, None)
        raise


def broker(config_path: str) -> None:
    """CONFIG: {"port", "function_port", "path", "triggers": [...], "refs": {"Kind/name": url},
    "log": file, "reply_delay_ms": {"<sequence mod 4>": ms}, "workers": n}."""
    import cloudevents.http as ce
    from cloudevents.conversion import to_binary
    from cloudevents.sdk.converters import is_binary

    cfg = json.loads(Path(config_path).read_text())
    log_lock = threading.Lock()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=int(cfg.get("workers", 1)))

    def record(kind: str, **data: Any) -> None:
        with log_lock, open(cfg["log"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, "t": time.monotonic(), **data}) + "\n")

    def matches(trigger: dict[str, Any], attrs: dict[str, Any]) -> bool:
        wanted = ((trigger["spec"].get("filter") or {}).get("attributes")) or {}
        return all(str(attrs.get(k)) == v for k, v in wanted.items())

    def deliver(event: Any, trigger: dict[str, Any]) -> None:
        sub = trigger["spec"]["subscriber"]
        ref = sub["ref"]
        url = cfg["refs"][f"{ref['kind']}/{ref['name']}"].rstrip("/") + sub.get("uri", "/")
        headers, body = to_binary(event, data_marshaller=lambda d: d)
        for _attempt in range(3):
            try:
                status, rheaders, rbody = _post(url, dict(headers), body if isinstance(body, bytes) else b"")
            except OSError as exc:
                record("delivery-error", trigger=trigger["metadata"]["name"], error=str(exc))
                time.sleep(0.1)
                continue
            record("delivered", trigger=trigger["metadata"]["name"], status=status,
                   attrs={k: str(v) for k, v in event.get_attributes().items()})
            if status == 200 and any(k.startswith("ce-") for k in rheaders):
                reply = ce.from_http(rheaders, rbody, data_unmarshaller=lambda d: d)
                ingest(reply)
            return

    def ingest(event: Any) -> None:
        attrs = {k: str(v) for k, v in event.get_attributes().items()}
        for trigger in cfg["triggers"]:
            if matches(trigger, attrs):
                pool.submit(deliver, event, trigger)

    class Ingress(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = _read_body(self)
            if self.path != cfg["path"]:
                _reply(self, 404)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if not is_binary(headers):
                    raise ValueError("not a binary-mode CloudEvent")
                event = ce.from_http(headers, body, data_unmarshaller=lambda d: d)
                attrs = event.get_attributes()
                for required in ("id", "source", "type", "specversion"):
                    if not attrs.get(required):
                        raise ValueError(f"missing {required}")
                if attrs["specversion"] != "1.0":
                    raise ValueError("specversion")
            except Exception as exc:
                record("rejected", error=str(exc))
                _reply(self, 400, str(exc).encode())
                return
            record("accepted", headers=headers, data=base64.b64encode(body).decode())
            _reply(self, 202)
            ingest(event)

    class Function(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = _read_body(self)
            headers = {k.lower(): v for k, v in self.headers.items()}
            event = ce.from_http(headers, body, data_unmarshaller=lambda d: d)
            attrs = event.get_attributes()
            reply_to = attrs.get("ros2replyto")
            if not reply_to:
                _reply(self, 202)
                return
            seq = str(attrs.get("sequence", "0"))
            delay = cfg.get("reply_delay_ms", {}).get(str(int(seq) % 4), 0)
            if delay:
                time.sleep(delay / 1000)
            text = json.loads(body)["data"]
            out = ce.CloudEvent({
                "type": "org.ros2.reply",
                "source": "function://detect",
                "ros2bridge": attrs["ros2bridge"],
                "ros2replyto": reply_to,
                "sequence": seq,
                "datacontenttype": "application/json",
            }, json.dumps({"data": f"DETECTED:{text}"}).encode())
            rheaders, rbody = to_binary(out, data_marshaller=lambda d: d)
            _reply(self, 200, rbody, dict(rheaders))

    servers = [_Server(("127.0.0.1", cfg["port"]), Ingress), _Server(("127.0.0.1", cfg["function_port"]), Function)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Path(cfg["log"] + ".ready").write_text("ready")
    time.sleep(float(cfg.get("lifetime", 60)))


def lean_ingress(port: str, out: str, lifetime: str) -> None:
    """A minimal HTTP/1.1 endpoint answering 202 to every POST (keep-alive), for the benchmark's
    "bridge alone" figure: it records how many requests arrived and when the last one did."""
    import asyncio

    state = {"count": 0, "last": 0.0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                state["count"] += 1
                state["last"] = time.monotonic()
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        await asyncio.start_server(handle, "127.0.0.1", int(port))
        Path(out + ".ready").write_text("ready")
        end = time.monotonic() + float(lifetime)
        while time.monotonic() < end:
            await asyncio.sleep(0.2)
            Path(out).write_text(json.dumps(state))

    asyncio.run(main())


def http_client(requests_path: str) -> None:
    """REQUESTS: [{"method", "url", "headers", "body_b64"}] → JSON lines {status, body_b64}."""
    for r in json.loads(Path(requests_path).read_text()):
        parts = urllib.parse.urlsplit(r["url"])
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        try:
            conn.request(r["method"], parts.path or "/", body=base64.b64decode(r.get("body_b64", "")),
                         headers=r.get("headers", {}))
            response = conn.getresponse()
            status, body = response.status, response.read()
        except OSError as exc:
            status, body = 0, str(exc).encode()
        finally:
            conn.close()
        print(json.dumps({"status": status, "body_b64": base64.b64encode(body).decode()}), flush=True)


def endpoints(wanted: str, timeout: str) -> None:
    """Discovery as a ROS 2 graph tool sees it: the DCPSPublication / DCPSSubscription built-in topics. WANTED is
    ``kind:dds_topic,...`` (kind pub or sub); prints one JSON line per endpoint found: its topic, type name and
    USER_DATA (latin-1), until every wanted one was seen or TIMEOUT seconds passed."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
    from cyclonedds.core import Policy
    from cyclonedds.domain import DomainParticipant

    dp = DomainParticipant(0)
    readers = {"pub": BuiltinDataReader(dp, BuiltinTopicDcpsPublication),
               "sub": BuiltinDataReader(dp, BuiltinTopicDcpsSubscription)}
    todo = {tuple(w.split(":", 1)) for w in wanted.split(",")}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    deadline = time.monotonic() + float(timeout)
    while todo - set(found) and time.monotonic() < deadline:
        for kind, reader in readers.items():
            for sample in reader.take(N=100):
                if (kind, sample.topic_name) in todo:
                    data = b""
                    for policy in sample.qos:
                        if isinstance(policy, Policy.Userdata):
                            data = policy.data
                    found[(kind, sample.topic_name)] = {"kind": kind, "topic": sample.topic_name,
                                                        "type": sample.type_name, "user_data": data.decode("latin-1")}
        time.sleep(0.05)
    for entry in found.values():
        print(json.dumps(entry), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"pub": publish, "sub": subscribe, "broker": broker, "http": http_client, "echo": echo, "rtt": rtt,
     "ingress": lean_ingress, "endpoints": endpoints}[mode](*args)
