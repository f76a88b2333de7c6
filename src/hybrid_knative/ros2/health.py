"""Bridge health for ``status`` / ``doctor``: read a bridge's ``/metrics`` and turn it into rows.

``read_bridge_health(url)`` never raises for an unreachable or broken bridge: it returns a
:class:`BridgeHealth` with ``reachable=False`` and the reason, so a status table can show it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import requests

_MAX_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TopicHealth:
    topic: str
    direction: str  # "in" (topic → events) or "reply" (events → topic)
    type: str
    rate: float
    count: int  # delivered events (in) or published replies (reply)
    dropped: int


@dataclasses.dataclass(frozen=True)
class BridgeHealth:
    url: str
    reachable: bool
    healthy: bool
    name: str = ""
    detail: str = ""
    broker_up: bool | None = None
    buffered: int = 0
    topics: tuple[TopicHealth, ...] = ()
    last_errors: tuple[str, ...] = ()

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, ready yes/no, detail) rows in the shape of the status table."""
        head = (self.name or self.url, "yes" if self.healthy else "no", self.detail)
        rows = [head]
        for t in self.topics:
            arrow = "→ events" if t.direction == "in" else "← replies"
            rows.append((f"  {t.topic}", "", f"{arrow} {t.type} {t.rate:g}/s, {t.count} sent, {t.dropped} dropped"))
        rows.extend(("  last error", "", e) for e in self.last_errors[-3:])
        return rows


def bridge_urls(services: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(namespace, bridge name, in-cluster base URL) of every bridge Service among ``services``
    (Services labelled ``app.kubernetes.io/name: ros2-bridge``, as render_bridge makes them)."""
    found = []
    for svc in services:
        meta = svc.get("metadata") or {}
        if svc.get("kind", "Service") != "Service" or (meta.get("labels") or {}).get(
                "app.kubernetes.io/name") != "ros2-bridge":
            continue
        ns, name = str(meta.get("namespace", "default")), str(meta.get("name", ""))
        found.append((ns, name, f"http://{name}.{ns}.svc.cluster.local"))
    return sorted(found)


def parse_metrics(url: str, doc: Any) -> BridgeHealth:
    if not isinstance(doc, dict) or not isinstance(doc.get("topics"), list):
        return BridgeHealth(url=url, reachable=True, healthy=False, detail="the answer is not bridge metrics")
    topics = []
    for t in doc["topics"]:
        if isinstance(t, dict):
            dropped = sum(int(t.get(k, 0) or 0) for k in ("dropped_rate", "dropped_buffer", "dropped_oversize"))
            topics.append(TopicHealth(str(t.get("topic", "?")), "in", str(t.get("type", "?")),
                                      float(t.get("rate", 0) or 0), int(t.get("delivered", 0) or 0), dropped))
    for r in doc.get("replies") or []:
        if isinstance(r, dict):
            topics.append(TopicHealth(str(r.get("topic", "?")), "reply", str(r.get("type", "?")),
                                      float(r.get("rate", 0) or 0), int(r.get("published", 0) or 0),
                                      int(r.get("skipped", 0) or 0)))
    errors = tuple(f"{e.get('time', '')} {e.get('where', '')}: {e.get('error', '')}"
                   for e in doc.get("errors") or [] if isinstance(e, dict))
    raw_buffer = doc.get("buffer")
    buffer: dict[str, Any] = raw_buffer if isinstance(raw_buffer, dict) else {}
    buffered = int(buffer.get("events", 0) or 0)
    broker_up = doc.get("broker_up")
    healthy = doc.get("status") == "ok"
    detail = f"{len(topics)} topics, {buffered} buffered"
    if broker_up is False:
        detail += ", Broker unreachable"
    if errors:
        detail += f", {doc.get('error_count', len(errors))} errors"
    return BridgeHealth(url=url, reachable=True, healthy=healthy, name=str(doc.get("bridge", "")), detail=detail,
                        broker_up=broker_up if isinstance(broker_up, bool) else None, buffered=buffered,
                        topics=tuple(topics), last_errors=errors)


def read_bridge_health(url: str, *, timeout: float = 3.0, session: requests.Session | None = None) -> BridgeHealth:
    """GET ``<url>/metrics`` of one bridge (``url`` = its base URL, e.g. the Service's)."""
    base = url.rstrip("/")
    http = session or requests.Session()
    try:
        with http.get(f"{base}/metrics", timeout=timeout, stream=True) as response:
            content = response.raw.read(_MAX_BYTES + 1, decode_content=True)
            if response.status_code != 200:
                return BridgeHealth(url=url, reachable=True, healthy=False,
                                    detail=f"/metrics answered HTTP {response.status_code}")
    except requests.RequestException as exc:
        return BridgeHealth(url=url, reachable=False, healthy=False, detail=f"unreachable: {exc.__class__.__name__}")
    if len(content) > _MAX_BYTES:
        return BridgeHealth(url=url, reachable=True, healthy=False, detail="/metrics answer too large")
    try:
        import json

        doc = json.loads(content)
    except ValueError:
        return BridgeHealth(url=url, reachable=True, healthy=False, detail="/metrics is not JSON")
    return parse_metrics(url, doc)
