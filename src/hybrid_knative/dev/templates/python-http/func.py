"""An HTTP function. Knative sends requests to $PORT; edit ``handle``. Standard library only."""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handle(method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
    """Return (status, content type, body) for one request."""
    name = "world"
    if body:
        try:
            name = str(json.loads(body).get("name", name))
        except (ValueError, AttributeError):
            return 400, "application/json", b'{"error": "send JSON like {\\"name\\": \\"x\\"}"}'
    return 200, "application/json", json.dumps({"hello": name, "method": method, "path": path}).encode()


class Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, ctype, payload = handle(self.command, self.path, self.rfile.read(length) if length else b"")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", file=sys.stdout, flush=True)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104 - Knative's queue-proxy and probes reach the pod
    print(f"listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
