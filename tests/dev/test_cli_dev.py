"""The commands as a user runs them (click's runner, the emulator, real buildah and registry): new → deploy →
re-deploy unchanged; logs across revisions with events; events send (binary CloudEvent through the API
server's service proxy) and tail's receiver; clear errors with exit codes, never a traceback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cloudevents.http import from_http

from hybrid_knative.cli.dev import build_event_display
from hybrid_knative.cli.main import cli
from hybrid_knative.dev import events as eventing
from hybrid_knative.dev import logs as logging_
from hybrid_knative.dev.registry import Registry
from hybrid_knative.progress import Status
from tests.airgap.conftest import free_port
from tests.dev.conftest import Builder, DevCluster, Gateway, skopeo_digest
from tests.harness.validation import ManifestValidator

pytestmark = pytest.mark.integration
SERVING = "serving.knative.dev/v1"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_new_deploy_redeploy_delete(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                    tmp_path: Path) -> None:
    cluster = make_dev_cluster()
    code, out, _ = run("new", "hello", "--template", "python-cloudevents", "--path", str(tmp_path / "hello"))
    assert code == 0 and "Next: cd" in out
    args = ["deploy", "--path", str(tmp_path / "hello"), "--kubeconfig", str(cluster.kubeconfig),
            "--registry", builder.registry.host, "--mirror", f"docker.io={builder.registry.host}",
            "--storage-root", str(builder.storage), "--no-verify-url", "--poll-interval", "0.01", "--timeout", "10"]
    code, out, err = run(*args)
    assert code == 0, err
    assert out.strip() == "http://hello-default.hk.internal"
    assert "✓ Build hello" in err and f"{builder.registry.host}/default/hello@sha256:" in err
    image = cluster.server.get(SERVING, "services", "hello", "default")["spec"]["template"]["spec"]["containers"][0][
        "image"]
    assert skopeo_digest(image) == image.split("@")[1]
    code, out, err = run(*args)
    assert code == 0 and "unchanged: 1 objects already up to date (no new revision)" in err
    code, out, err = run("delete", "--path", str(tmp_path / "hello"), "--kubeconfig", str(cluster.kubeconfig), "-y")
    assert code == 0 and "deleted 1 objects of project hello" in err
    assert cluster.server.get(SERVING, "services", "hello", "default") is None


@pytest.mark.parametrize(("files", "args", "code", "needle"), [
    ({"hybrid-knative.yaml": "name: x\nfunctions:\n  a:\n    scael: 1\n"}, [], 2, "hybrid-knative.yaml:4:"),
    ({"hybrid-knative.yaml": "name: x\nfunctions:\n  a: {}\n"}, [], 2, "missing Dockerfile"),
    ({"hybrid-knative.yaml": "name: x\nfunctions:\n  a: {}\n", "Dockerfile": "FROM x\n"}, ["-f", "b"], 2,
     "no function 'b'"),
    ({"serverless.yml": "service: s\nprovider: {name: knative}\nfunctions:\n  f:\n    handler: Dockerfile\n"
      "    events:\n      - awsSqs: {arn: x}\n", "Dockerfile": "FROM x\n"}, [], 2, "AWS SQS"),
])
def test_deploy_bad_input_is_a_clear_error(make_dev_cluster: Callable[..., DevCluster], tmp_path: Path,
                                           files: dict[str, str], args: list[str], code: int, needle: str) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    got, out, err = run("deploy", "--path", str(tmp_path), "--kubeconfig", str(cluster.kubeconfig), *args)
    assert got == code and needle in err and "Traceback" not in err + out, err
    assert cluster.server.list(SERVING, "services", "default") == []


def test_deploy_without_registry_says_how_to_get_one(make_dev_cluster: Callable[..., DevCluster],
                                                    tmp_path: Path) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    run("new", "r", "--path", str(tmp_path / "r"))
    code, _, err = run("deploy", "--path", str(tmp_path / "r"), "--kubeconfig", str(cluster.kubeconfig))
    assert code == 2 and "microk8s enable registry" in err and "--registry" in err


def test_new_unknown_template_and_existing_folder(tmp_path: Path) -> None:
    code, _, err = run("new", "x", "--template", "cobol-http", "--path", str(tmp_path / "x"))
    assert code == 2 and "cobol-http" in err
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "keep.txt").write_text("mine")
    code, _, err = run("new", "y", "--path", str(tmp_path / "y"))
    assert code == 2 and "not empty" in err and (tmp_path / "y" / "keep.txt").read_text() == "mine"


@pytest.fixture
def backend() -> Iterator[int]:
    """A plain HTTP server standing in for a running function (answers with what it got)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.dumps({"got": self.rfile.read(length).decode()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


def test_invoke_says_which_path_it_used(make_dev_cluster: Callable[..., DevCluster], gateway: Gateway,
                                        backend: int) -> None:
    cluster = make_dev_cluster(ingress_port=gateway.port)
    cluster.server.put_object(SERVING, "services", {"apiVersion": SERVING, "kind": "Service", "metadata": {
        "name": "fn", "namespace": "default"}, "spec": {"template": {"spec": {"containers": [{"image": "x@sha256:"
                                                                                             + "0" * 64}]}}}})
    gateway.routes["fn-default.hk.internal"] = backend
    code, out, err = run("invoke", "fn", "--data", '{"a": 1}', "--kubeconfig", str(cluster.kubeconfig))
    assert code == 0, err
    assert json.loads(out) == {"got": '{"a": 1}'}
    assert f"→ ingress 127.0.0.1:{gateway.port} (externalIPs) with Host: fn-default.hk.internal" in err
    code, _, err = run("invoke", "nope", "--kubeconfig", str(cluster.kubeconfig))
    assert code == 2 and "no function (Knative Service) default/nope" in err


def _pod(name: str, revision: str, created: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "default", "creationTimestamp": created,
        "labels": {"serving.knative.dev/service": "fn", "serving.knative.dev/revision": revision}},
        "status": {"phase": "Running"}}


def test_logs_across_revisions_with_events(make_dev_cluster: Callable[..., DevCluster]) -> None:
    cluster = make_dev_cluster()
    server = cluster.server
    server.put_object(SERVING, "services", {"apiVersion": SERVING, "kind": "Service", "metadata": {
        "name": "fn", "namespace": "default"}, "spec": {}})
    for rev in ("fn-00001", "fn-00002"):
        server.put_object(SERVING, "revisions", {"apiVersion": SERVING, "kind": "Revision", "metadata": {
            "name": rev, "namespace": "default", "labels": {"serving.knative.dev/service": "fn"}}, "spec": {}})
    server.put_object("v1", "pods", _pod("fn-00001-deployment-a", "fn-00001", "2026-01-01T00:00:00Z"))
    server.put_object("v1", "pods", _pod("fn-00002-deployment-b", "fn-00002", "2026-01-01T00:01:00Z"))
    server.put_object("v1", "pods", {**_pod("other-x", "other-00001", "2026-01-01T00:00:00Z"), "metadata": {
        "name": "other-x", "namespace": "default", "labels": {"serving.knative.dev/service": "other"}}})
    server.put_object("v1", "events", {"apiVersion": "v1", "kind": "Event", "metadata": {
        "name": "e1", "namespace": "default"}, "type": "Normal", "reason": "Pulled",
        "lastTimestamp": "2026-01-01T00:01:01Z", "message": "Successfully pulled image",
        "involvedObject": {"kind": "Pod", "name": "fn-00002-deployment-b"}})
    server.put_object("v1", "events", {"apiVersion": "v1", "kind": "Event", "metadata": {
        "name": "e2", "namespace": "default"}, "type": "Warning", "reason": "BackOff",
        "lastTimestamp": "2026-01-01T00:02:00Z", "message": "not ours",
        "involvedObject": {"kind": "Pod", "name": "other-x"}})
    requested: list[str] = []

    def log_of(pod: str, text: bytes) -> Callable[[Any], bytes]:
        def answer(req: Any) -> bytes:
            requested.append(f"{pod}?{req.url.query_string}")
            return text
        return answer

    server.emulator["get /api/v1/namespaces/default/pods/fn-00001-deployment-a/log"] << log_of("a", b"old 1\n")
    server.emulator["get /api/v1/namespaces/default/pods/fn-00002-deployment-b/log"] << log_of("b", b"new 1\nnew 2\n")
    code, out, err = run("logs", "fn", "--kubeconfig", str(cluster.kubeconfig))
    assert code == 0, err
    assert out.splitlines() == [
        "[fn-00001/fn-00001-deployment-a] old 1",
        "[fn-00002/fn-00002-deployment-b] new 1",
        "[fn-00002/fn-00002-deployment-b] new 2",
        "[event] 2026-01-01T00:01:01Z Normal Pulled Pod/fn-00002-deployment-b: Successfully pulled image",
    ]
    assert all("container=user-container" in r for r in requested)
    code, _, err = run("logs", "nope", "--kubeconfig", str(cluster.kubeconfig))
    assert code == 2 and "no function" in err


def test_events_send_is_a_binary_cloudevent_to_the_broker(make_dev_cluster: Callable[..., DevCluster]) -> None:
    cluster = make_dev_cluster()
    got: list[tuple[dict[str, str], bytes]] = []
    path = "post /api/v1/namespaces/knative-eventing/services/broker-ingress:http/proxy/default/default"
    cluster.server.emulator[path] << (lambda req: got.append((dict(req.headers), req.body)) or b"")  # type: ignore[func-returns-value]
    code, _, err = run("events", "send", "--type", "greeting", "--data", '{"name": "x"}', "--source", "/me",
                       "--kubeconfig", str(cluster.kubeconfig))
    assert code == 0, err
    assert "via the API server's service proxy" in err
    headers, body = got[0]
    event = from_http({k.lower(): v for k, v in headers.items()}, body)
    assert (event["type"], event["source"], event.data) == ("greeting", "/me", {"name": "x"})
    code, _, err = run("events", "send", "--type", "x", "-n", "team", "--kubeconfig", str(cluster.kubeconfig))
    assert code == 2 and "no Broker team/default" in err


def test_events_tail_receiver_is_built_subscribed_and_read(make_dev_cluster: Callable[..., DevCluster],
                                                           builder: Builder, validator: ManifestValidator) -> None:
    cluster = make_dev_cluster()
    reg = Registry(builder.registry.host, builder.registry.host, "--registry")
    image = build_event_display(builder.with_mirror(), reg, "default", Status(verbosity=-1))
    assert skopeo_digest(image) == image.split("@")[1]
    objs = eventing.tail_objects("default", image, "default", {"type": "greeting"})
    assert validator.validate_all(objs) == []
    assert objs[1]["spec"]["filter"] == {"attributes": {"type": "greeting"}}
    # what the receiver prints is read back through the pod's logs
    server = cluster.server
    server.put_object(SERVING, "services", {**objs[0], "spec": objs[0]["spec"]})
    server.put_object("v1", "pods", {**_pod("tail-pod", "hk-event-display-00001", "2026-01-01T00:00:00Z"),
                                     "metadata": {"name": "tail-pod", "namespace": "default", "labels": {
                                         "serving.knative.dev/service": eventing.TAIL_NAME}}})
    line = 'EVENT {"data": {"name": "x"}, "id": "1", "source": "/me", "specversion": "1.0", "type": "greeting"}\n'
    server.emulator["get /api/v1/namespaces/default/pods/tail-pod/log"] << line.encode()
    seen: list[dict[str, Any]] = []
    for item in logging_.follow(cluster.kube(), eventing.TAIL_NAME, "default", poll=0.05,
                                stop=lambda: len(seen) >= 1):
        event = eventing.parse_display_line(item.text)
        if event is not None:
            seen.append(event)
    assert seen == [{"data": {"name": "x"}, "id": "1", "source": "/me", "specversion": "1.0", "type": "greeting"}]
