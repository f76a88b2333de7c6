"""Prints every CloudEvent it receives as one JSON line on stdout (used by `hybrid-knative events tail`)."""

from __future__ import annotations

import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SHOWN = 4096  # bytes of a binary body shown (base64)


def _textual(ctype: str) -> bool:
    kind = ctype.split(";")[0].strip().lower()
    return not kind or kind.startswith("text/") or kind.endswith("json") or kind.endswith("+json") \
        or kind in ("application/xml", "application/x-www-form-urlencoded")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/cloudevents+json"):
            event = json.loads(body)
        else:
            event = {k[3:].lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            if body and not _textual(ctype):  # e.g. application/cdr (ROS 2 messages): show size and a prefix
                event["datasize"] = len(body)
                event["data_base64"] = base64.b64encode(body[:MAX_SHOWN]).decode()
            else:
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
