"""Manifest reads over the registry API: basic auth against the real registry (htpasswd), and the bearer-token
flow the cloud registries use, against a small token-protected server on 127.0.0.1 that follows the
distribution token-auth spec (401 + WWW-Authenticate: Bearer realm/service/scope → GET realm → token)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.errors import PermanentError, TemporaryError
from hybrid_knative.system.registry_api import RegistryApi, load_auths
from tests.clone.conftest import World

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"digest": "sha256:" + "0" * 64, "size": 2}, "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
CREDS = base64.b64encode(b"oauth2accesstoken:ya29.secret").decode()


@pytest.fixture
def token_registry() -> Iterator[tuple[int, list[str]]]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]
            seen.append(self.path)
            if self.path.startswith("/token"):
                ok = (self.headers.get("Authorization") == f"Basic {CREDS}"
                      and "scope=repository%3Aacme%2Fhello%3Apull" in self.path
                      and "service=test-registry" in self.path)
                self._send(200 if ok else 401, json.dumps({"token": "t0k"}).encode() if ok else b"{}")
                return
            if self.headers.get("Authorization") != "Bearer t0k":
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                                 'service="test-registry",scope="repository:acme/hello:pull"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == f"/v2/acme/hello/manifests/{DIGEST}":
                self._send(200, MANIFEST)
            else:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_bearer_token_flow(token_registry: tuple[int, list[str]]) -> None:
    port, seen = token_registry
    api = RegistryApi(auths={f"127.0.0.1:{port}": CREDS})
    raw = api.manifest(f"127.0.0.1:{port}", "acme/hello", DIGEST)
    assert raw is not None and "sha256:" + hashlib.sha256(raw).hexdigest() == DIGEST
    assert api.manifest(f"127.0.0.1:{port}", "acme/hello", "sha256:" + "1" * 64) is None
    assert sum(1 for p in seen if p.startswith("/token")) == 1  # the token is reused


def test_bearer_token_refused(token_registry: tuple[int, list[str]]) -> None:
    port, _ = token_registry
    api = RegistryApi(auths={f"127.0.0.1:{port}": base64.b64encode(b"x:y").decode()})
    with pytest.raises(PermanentError, match="refused the credentials"):
        api.manifest(f"127.0.0.1:{port}", "acme/hello", DIGEST)


def test_basic_auth_against_the_real_registry(world: World) -> None:
    host = world.dst_registry.host
    with pytest.raises(PermanentError, match="refused the credentials"):
        RegistryApi().manifest(host, "acme/fns/shop/hello", "1")
    api = RegistryApi(auths=load_auths(world.dst_registry.authfile))
    assert api.manifest(host, "acme/fns/shop/hello", "1") is None  # nothing copied yet: 404, not an error
    assert api.requests_made == 2  # the challenge, then the answer
    # basic auth is per host: another repository needs no new challenge (one request, one connection)
    assert api.manifest(host, "acme/fns/shop/orders", "2") is None
    assert api.requests_made == 3


def test_unreachable_registry_is_temporary(tmp_path: Path) -> None:
    with pytest.raises(TemporaryError, match="unreachable"):
        RegistryApi(timeout=2).manifest("127.0.0.1:9", "x", "latest")
    bad = tmp_path / "auth.json"
    bad.write_text("not json")
    with pytest.raises(Exception, match="cannot read the authfile"):
        load_auths(bad)
