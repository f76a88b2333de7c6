"""The emulator's service proxy answers like kube-apiserver's (pkg/registry/core/service/storage,
ResourceLocation + isValidAddress): bad ids, unknown port numbers, missing or empty Endpoints, addresses without
a valid Pod behind them, an endpoint that refuses connections — and forwards for real to a valid one (a
host-network pod on a Node whose InternalIP is 127.0.0.1, where a real HTTP server listens)."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from tests.harness.emulator import ApiServer, FakeController
from tests.ros2.conftest import free_port

NS = "default"


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(controller=FakeController()) as server:
        yield server


def get(api: ApiServer, path: str, method: str = "GET") -> tuple[int, Any]:
    import http.client

    url = urllib.parse.urlsplit(api.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(method, path, headers={"Authorization": "Bearer secret"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def proxy(name: str, path: str = "metrics") -> str:
    return f"/api/v1/namespaces/{NS}/services/{name}/proxy/{path}"


def robot_with_bridge(api: ApiServer, port: int, *, host_network: bool = True) -> None:
    """A Node at 127.0.0.1 and a Deployment + Service like the ROS 2 bridge's (the controller makes the rest)."""
    api.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": "robot-1", "labels": {"kubernetes.io/hostname": "robot-1"}},
                                   "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})
    labels = {"app": "bridge"}
    api.put_object("apps/v1", "deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bridge", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"hostNetwork": host_network, "nodeSelector": {"kubernetes.io/hostname": "robot-1"},
                     "containers": [{"name": "b", "image": "b:1",
                                     "ports": [{"name": "http", "containerPort": port}]}]}}}})
    api.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": "bridge", "namespace": NS},
                                      "spec": {"selector": labels, "ports": [
                                          {"name": "http", "port": 80, "targetPort": "http"}]}})


def test_forwards_to_a_host_network_pod_by_port_name_and_number(api: ApiServer, backend: int) -> None:
    robot_with_bridge(api, backend)
    for ident in ("bridge:http", "bridge:80", "http:bridge:http"):
        code, body = get(api, proxy(ident, "metrics?x=1"))
        assert code == 200, body
        assert body["path"] == "/metrics?x=1"
        assert body["auth"] is None  # the API server's credentials stay with it
    [pod] = api.list("v1", "pods", NS)
    assert pod["spec"]["nodeName"] == "robot-1" and pod["status"]["podIPs"] == [{"ip": "127.0.0.1"}]


@pytest.mark.parametrize(("ident", "code", "message"), [
    ("a:b:c:d", 400, 'invalid service request "a:b:c:d"'),
    ("ftp:bridge:http", 400, 'invalid service request "ftp:bridge:http"'),
    ("bridge:81", 503, 'no service port 81 found for service "bridge"'),
    ("nothing:80", 404, 'services "nothing" not found'),
    ("nothing:http", 404, 'endpoints "nothing" not found'),
    ("bridge:metrics", 503, 'no endpoints available for service "bridge:metrics"'),
])
def test_refuses_like_the_api_server(api: ApiServer, backend: int, ident: str, code: int, message: str) -> None:
    robot_with_bridge(api, backend)
    got, body = get(api, proxy(ident))
    assert (got, body["kind"], body["message"]) == (code, "Status", message)


def test_no_endpoints_and_addresses_without_a_pod(api: ApiServer, backend: int) -> None:
    api.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": "empty", "namespace": NS},
                                      "spec": {"ports": [{"name": "http", "port": 80}]}})
    api.put_object("v1", "endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                       "metadata": {"name": "empty", "namespace": NS}, "subsets": []})
    assert get(api, proxy("empty:http"))[1]["message"] == 'no endpoints available for service "empty"'
    # an address with no targetRef (or a Pod that does not hold that IP) is never proxied to
    api.put_object("v1", "endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                       "metadata": {"name": "empty", "namespace": NS}, "subsets": [{
                                           "addresses": [{"ip": "127.0.0.1"}],
                                           "ports": [{"name": "http", "port": backend}]}]})
    code, body = get(api, proxy("empty:http"))
    assert (code, body["message"]) == (503, 'no endpoints available for service "empty:http"')


def test_pod_network_pods_are_not_reached(api: ApiServer, backend: int) -> None:
    """Pod-network pods get a stand-in address without a Pod behind it: the proxy says so, it never guesses."""
    robot_with_bridge(api, backend, host_network=False)
    code, body = get(api, proxy("bridge:http"))
    assert (code, body["reason"]) == (503, "ServiceUnavailable")


def test_a_refusing_endpoint_is_503_with_the_dial_error(api: ApiServer) -> None:
    port = free_port()  # nothing listens there
    robot_with_bridge(api, port)
    code, body = get(api, proxy("bridge:http"))
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert body["message"] == f"error trying to reach service: dial tcp 127.0.0.1:{port}: connect: connection refused"
