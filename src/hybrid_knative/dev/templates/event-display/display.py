"""Prints every CloudEvent it receives as one JSON line on stdout (used by `hybrid-knative events tail`)."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/cloudevents+json"):
            event = json.loads(body)
        else:
            event = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            try:
                event["data"] = json.loads(body) if body else None
            except ValueError:
                event["data"] = body.decode("utf-8", "replace")
        print("EVENT " + json.dumps(event, sort_keys=True), flush=True)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - Knative's queue-proxy and probes reach the pod
    ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
