"""The knative-docker function: answers "Hello World!" on $PORT (standard library only)."""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        target = os.environ.get("TARGET", "World")
        payload = f"Hello {target}!\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET


if __name__ == "__main__":
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - Knative's queue-proxy and probes reach the pod
    ThreadingHTTPServer((host, int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
