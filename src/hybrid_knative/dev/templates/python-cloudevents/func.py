"""A CloudEvents function: receives events (binary or structured mode) on $PORT and answers with an event.

Edit ``handle``. Standard library only, so the image builds offline from the base image alone.
"""

from __future__ import annotations

import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY_TYPE = "dev.hybrid-knative.reply"


def handle(attributes: dict[str, str], data: Any) -> tuple[dict[str, str], Any] | None:
    """Return (attributes, data) of the reply event, or None for no reply."""
    name = data.get("name", "world") if isinstance(data, dict) else "world"
    print(f"event {attributes.get('type')} from {attributes.get('source')} id={attributes.get('id')}", flush=True)
    reply = {"type": REPLY_TYPE, "source": "/" + os.environ.get("K_SERVICE", "function")}
    return reply, {"hello": name, "in_reply_to": attributes.get("id")}


def parse(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], Any]:
    """CloudEvent attributes and data from an HTTP request (binary or structured mode)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("content-type", "").startswith("application/cloudevents+json"):
        event = json.loads(body)
        data = event.pop("data", None)
        return {k: str(v) for k, v in event.items()}, data
    attributes = {k[3:]: v for k, v in lowered.items() if k.startswith("ce-")}
    if not {"id", "source", "type", "specversion"} <= attributes.keys():
        raise ValueError("not a CloudEvent: ce-id, ce-source, ce-type and ce-specversion headers are required")
    ctype = lowered.get("content-type", "")
    data: Any = body
    if body and ("json" in ctype or not ctype):
        data = json.loads(body)
    return attributes, data


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            attributes, data = parse(dict(self.headers.items()), self.rfile.read(length) if length else b"")
        except ValueError as exc:
            self._reply(400, {"Content-Type": "text/plain"}, str(exc).encode())
            return
        reply = handle(attributes, data)
        if reply is None:
            self._reply(202, {}, b"")
            return
        reply_attrs, reply_data = reply
        headers = {"Ce-Specversion": "1.0", "Ce-Id": str(uuid.uuid4()), "Content-Type": "application/json"}
        headers.update({f"Ce-{k.capitalize()}": v for k, v in reply_attrs.items()})
        self._reply(200, headers, json.dumps(reply_data).encode())

    def do_GET(self) -> None:
        self._reply(200, {"Content-Type": "text/plain"}, b"POST a CloudEvent here\n")

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - Knative's queue-proxy and probes reach the pod
    print(f"listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
