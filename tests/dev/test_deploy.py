"""deploy on the API emulator with real builds and a real registry: the KService references the pushed digest
(which exists in the registry and runs), a re-deploy writes nothing, an edit makes exactly one write, invoke
goes through the ingress with a Host header (and sends valid binary-mode CloudEvents), delete removes
exactly the project's objects; bad input and failures leave nothing half-deployed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import from_http

from hybrid_knative.dev import templates
from hybrid_knative.dev.deploy import DeployOptions, delete, deploy
from hybrid_knative.dev.invoke import invoke, target_for
from hybrid_knative.dev.project import load_project
from hybrid_knative.dev.registry import Registry, choose
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.progress import Status
from tests.airgap.conftest import free_port
from tests.dev.conftest import Builder, DevCluster, Gateway, kafka_source_crd, knative_crds, skopeo_digest
from tests.dev.test_build import start, stop
from tests.harness.validation import ManifestValidator

pytestmark = pytest.mark.integration
QUIET = Status(verbosity=-1)


def NO_DNS(host: str) -> str | None:
    return None


SERVING = "serving.knative.dev/v1"
FAST = DeployOptions(timeout=10, poll_interval=0.01, verify_url=False)


def reg(builder: Builder) -> Registry:
    return Registry(builder.registry.host, builder.registry.host, "--registry")


def server_fields_removed(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}


def test_deploy_by_digest_redeploy_writes_nothing_invoke_delete(
        make_dev_cluster: Callable[..., DevCluster], builder: Builder, gateway: Gateway, tmp_path: Path,
        validator: ManifestValidator) -> None:
    cluster = make_dev_cluster(ingress_port=gateway.port)
    root = tmp_path / "hello"
    templates.create("hello", "python-http", root)
    (root / "hybrid-knative.yaml").write_text((root / "hybrid-knative.yaml").read_text().replace(
        "    # events:\n    #   - custom: {filter: {attributes: {type: greeting}}}",
        "    events:\n      - custom: {filter: {attributes: {type: greeting}}}"))
    project = load_project(root)
    kube = cluster.kube()
    buildah = builder.with_mirror()
    # a Knative Service of the user's that is not part of the project: delete must leave it alone
    cluster.server.put_object(SERVING, "services", {"apiVersion": SERVING, "kind": "Service", "metadata": {
        "name": "other", "namespace": "default"}, "spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}})

    first = deploy(project, kube, buildah, reg(builder), QUIET, FAST)
    ksvc = cluster.server.get(SERVING, "services", "hello", "default")
    assert ksvc is not None
    image = ksvc["spec"]["template"]["spec"]["containers"][0]["image"]
    repo, _, digest = image.partition("@")
    assert repo == f"{builder.registry.host}/default/hello" and first.images == {"hello": image}
    assert skopeo_digest(image) == digest  # the digest really exists in the registry
    trigger = cluster.server.get("eventing.knative.dev/v1", "triggers", "hello-custom-0", "default")
    assert trigger is not None and trigger["spec"]["subscriber"]["ref"]["name"] == "hello"
    for obj in (ksvc, trigger):
        assert obj["metadata"]["labels"] == {"hybrid-knative.dev/project": "hello",
                                             "hybrid-knative.dev/function": "hello"}
        assert validator.errors(server_fields_removed(obj)) == []
    assert first.urls == {"hello": "http://hello-default.hk.internal"}

    # the pushed image, pulled BY DIGEST from the registry, runs and answers; the gateway routes to it
    port = free_port()
    pulled = builder.buildah.run(["pull", "--tls-verify=false", image]).stdout.strip().splitlines()[-1]
    proc = start(builder, pulled, port)
    gateway.routes["hello-default.hk.internal"] = port
    try:
        # re-deploy with no change: same digest, no write at all, and the URL is printed only once it answers
        kube2 = cluster.kube()
        writes_before = len(cluster.server.writes())
        again = deploy(project, kube2, buildah, reg(builder), QUIET,
                       dataclasses.replace(FAST, verify_url=True), resolver=NO_DNS)
        assert again.images == first.images
        assert again.written == [] and again.pruned == [] and kube2.counters.writes == 0
        assert len(cluster.server.writes()) == writes_before
        assert again.answers["hello"].startswith("HTTP 200 via ingress 127.0.0.1:")

        # invoke: no DNS here, so the ingress address with a Host header; it says so
        reply = invoke(kube2, "hello", "default", data='{"name": "x"}', resolver=NO_DNS)
        assert reply.status == 200 and json.loads(reply.body)["hello"] == "x"
        assert f"ingress 127.0.0.1:{gateway.port} (externalIPs) with Host: hello-default.hk.internal" in \
            reply.target.how
        method, host, _, body = gateway.seen[-1]
        assert (method, host, body) == ("POST", "hello-default.hk.internal", b'{"name": "x"}')

        # --cloudevent: a binary-mode CloudEvent, as the CloudEvents SDK reads it
        invoke(kube2, "hello", "default", data='{"name": "ce"}', resolver=NO_DNS,
               cloudevent={"type": "greeting", "source": "/tests"})
        _, _, headers, body = gateway.seen[-1]
        event = from_http(headers, body)
        assert (event["type"], event["source"], event["specversion"]) == ("greeting", "/tests", "1.0")
        assert event.data == {"name": "ce"} and "ce-id" in headers

        # DNS when it resolves: the URL as it is, no Host rewriting
        direct = target_for(kube2, "http://hello-default.hk.internal", resolver=lambda h: "10.0.0.5")
        assert (direct.url, direct.host) == ("http://hello-default.hk.internal", None)
        assert direct.how == "DNS (hello-default.hk.internal → 10.0.0.5)"
    finally:
        stop(proc)

    # an edit: a new digest, exactly one write (the KService), a new generation
    (root / "func.py").write_text((root / "func.py").read_text().replace('"world"', '"planet"'))
    kube3 = cluster.kube()
    edited = deploy(project, kube3, buildah, reg(builder), QUIET, FAST)
    assert edited.images["hello"] != first.images["hello"]
    assert [r.kind for r in edited.written] == ["Service"] and kube3.counters.writes == 1
    assert cluster.server.get(SERVING, "services", "hello", "default")["metadata"]["generation"] == 2

    # dropping the event from the project prunes its Trigger on the next deploy
    (root / "hybrid-knative.yaml").write_text((root / "hybrid-knative.yaml").read_text().replace(
        "    events:\n      - custom: {filter: {attributes: {type: greeting}}}", ""))
    pruned = deploy(load_project(root), cluster.kube(), buildah, reg(builder), QUIET, FAST)
    assert [r.name for r in pruned.pruned] == ["hello-custom-0"] and pruned.written == []

    removed = delete(project, cluster.kube(), QUIET)
    assert [(r.kind, r.name) for r in removed] == [("Service", "hello")]
    assert cluster.server.get(SERVING, "services", "hello", "default") is None
    assert cluster.server.get(SERVING, "services", "other", "default") is not None


def _no_user_objects(cluster: DevCluster) -> None:
    for api_version, plural in ((SERVING, "services"), ("eventing.knative.dev/v1", "triggers"),
                                ("sources.knative.dev/v1", "pingsources")):
        assert cluster.server.list(api_version, plural, "default") == [], plural


def test_registry_down_deploys_nothing(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                       tmp_path: Path) -> None:
    cluster = make_dev_cluster()
    templates.create("down", "python-http", tmp_path / "down")
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(PermanentError) as err:
        deploy(load_project(tmp_path / "down"), cluster.kube(), builder.with_mirror(),
               Registry(dead, dead, "--registry"), QUIET, FAST)
    assert dead in err.value.brief
    _no_user_objects(cluster)


def test_build_failure_deploys_nothing(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                       tmp_path: Path) -> None:
    cluster = make_dev_cluster()
    root = tmp_path / "broken"
    templates.create("broken", "python-http", root)
    (root / "Dockerfile").write_text("FROM docker.io/library/python:3.12-slim\nCOPY nope /nope\n")
    with pytest.raises(PermanentError) as err:
        deploy(load_project(root), cluster.kube(), builder.with_mirror(), reg(builder), QUIET, FAST)
    assert "the image build failed" in err.value.brief and "nope" in str(err.value.details)
    _no_user_objects(cluster)


def test_cluster_checks_come_before_any_build(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                              tmp_path: Path) -> None:
    """Missing Knative, a kafka event without KafkaSource, a missing Broker: clear errors, nothing built."""
    root = tmp_path / "k"
    templates.create("k", "python-http", root)
    (root / "hybrid-knative.yaml").write_text(
        "name: k\nfunctions:\n  k:\n    events:\n      - kafka: {bootstrapServers: [b:9092], topics: [t]}\n")
    never = dataclasses.replace(builder.buildah, binary="/nonexistent/buildah")  # a build would fail loudly
    cluster = make_dev_cluster()
    with pytest.raises(ConfigError) as err:
        deploy(load_project(root), cluster.kube(), never, reg(builder), QUIET, FAST)
    assert "KafkaSource" in str(err.value) and "eventing-kafka-source" in str(err.value)

    bare = make_dev_cluster(crds=[])
    with pytest.raises(ConfigError) as err:
        deploy(load_project(root), bare.kube(), never, reg(builder), QUIET, FAST)
    assert "Knative Serving is not installed" in str(err.value)

    (root / "hybrid-knative.yaml").write_text(
        "name: k\nnamespace: team\nfunctions:\n  k:\n    events:\n      - custom: {}\n")
    with pytest.raises(ConfigError) as err:
        deploy(load_project(root), cluster.kube(), never, reg(builder), QUIET, FAST)
    assert "no Broker team/default" in err.value.brief and "--broker-namespace team" in str(err.value.resolution)
    _no_user_objects(cluster)


def test_kafka_event_deploys_a_kafka_source_once_the_cluster_serves_it(
        make_dev_cluster: Callable[..., DevCluster], builder: Builder, tmp_path: Path,
        validator: ManifestValidator) -> None:
    """With the KafkaSource CRD installed (our own, written from Knative's API reference), the same project the
    preflight refused above deploys: the KafkaSource points at the function and passes the CRD's schema."""
    root = tmp_path / "k"
    root.mkdir()
    (root / "hybrid-knative.yaml").write_text(
        "name: k\nfunctions:\n  k:\n    image: docker.io/library/nginx:1.27\n    events:\n"
        "      - kafka: {bootstrapServers: [my-cluster-kafka-bootstrap.kafka:9092], topics: [t], "
        "consumerGroup: g}\n")
    cluster = make_dev_cluster(crds=[*knative_crds(), kafka_source_crd()])
    never = dataclasses.replace(builder.buildah, binary="/nonexistent/buildah")  # a prebuilt image: no build
    outcome = deploy(load_project(root), cluster.kube(), never, None, QUIET, FAST)
    assert [(r.kind, r.name) for r in outcome.written] == [("Service", "k"), ("KafkaSource", "k-kafka-0")]
    source = cluster.server.get("sources.knative.dev/v1beta1", "kafkasources", "k-kafka-0", "default")
    assert source is not None and source["spec"]["sink"]["ref"]["name"] == "k"
    assert source["spec"]["consumerGroup"] == "g"
    assert validator.errors(server_fields_removed(source)) == []
    assert [(r.kind, r.name) for r in delete(load_project(root), cluster.kube(), QUIET)] == [
        ("KafkaSource", "k-kafka-0"), ("Service", "k")]


def test_registry_choice(make_dev_cluster: Callable[..., DevCluster]) -> None:
    with_addon = make_dev_cluster()
    assert choose(with_addon.kube(), override=None) == Registry("localhost:32000", "localhost:32000",
                                                                "MicroK8s registry addon")
    assert choose(with_addon.kube(), override="reg.example.com:5000/team/").push == "reg.example.com:5000/team"
    without = make_dev_cluster(registry_addon=False)
    with pytest.raises(ConfigError) as err:
        choose(without.kube(), override=None)
    assert "microk8s enable registry" in str(err.value.resolution) and "--registry" in str(err.value.resolution)
    with pytest.raises(ConfigError):
        choose(without.kube(), override="http://reg:5000")


def test_never_ready_is_a_clear_error_after_apply(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                                  tmp_path: Path) -> None:
    from tests.harness.knative import KnativeBehaviour

    cluster = make_dev_cluster()
    behaviour = next(h for h in cluster.server.controller.hooks if isinstance(h, KnativeBehaviour))  # type: ignore[union-attr]
    behaviour.failing["img"] = ("ImagePullBackOff", "Back-off pulling image")
    (tmp_path / "hybrid-knative.yaml").write_text(
        "name: img\nfunctions:\n  img:\n    image: docker.io/library/nginx:1.27\n")
    with pytest.raises(PermanentError) as err:
        deploy(load_project(tmp_path), cluster.kube(), builder.buildah, None, QUIET, FAST)
    assert "did not become Ready" in err.value.brief and "RevisionMissing" in err.value.brief


def test_knative_docker_serverless_project_deploys_unchanged(
        make_dev_cluster: Callable[..., DevCluster], builder: Builder, gateway: Gateway, tmp_path: Path,
        validator: ManifestValidator) -> None:
    """serverless-knative's knative-docker template (Flask + gunicorn, `FROM python:3.7-slim`, shell-form RUN
    and CMD), reconstructed file by file, deployed as it is — offline: the base comes through the mirror and
    `pip install Flask gunicorn` from a wheelhouse bind-mounted into the build."""
    from hybrid_knative.dev.offline import wheelhouse_volumes
    from tests.dev.conftest import WHEELHOUSE, make_pip_base
    from tests.dev.test_project import reconstruct_knative_docker

    if not any(WHEELHOUSE.glob("gunicorn-*.whl")) or not any(WHEELHOUSE.glob("flask-*.whl")):
        pytest.skip(f"needs a wheelhouse with Flask and gunicorn at {WHEELHOUSE} (.ci/run makes it: "
                    "`pip download -d … flask gunicorn`; set HK_TEST_WHEELHOUSE to move it)")
    make_pip_base(builder)
    cluster = make_dev_cluster(ingress_port=gateway.port)
    root = reconstruct_knative_docker(tmp_path / "sls")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    project = load_project(root)
    with wheelhouse_volumes(WHEELHOUSE) as volumes:
        buildah = dataclasses.replace(builder.with_mirror(), volumes=tuple(volumes))
        outcome = deploy(project, cluster.kube(), buildah, reg(builder), QUIET, FAST)
    name = "my-knative-project-hello-world"
    ksvc = cluster.server.get(SERVING, "services", name, "default")
    assert ksvc is not None and validator.errors(server_fields_removed(ksvc)) == []
    image = ksvc["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == outcome.images["hello-world"] and skopeo_digest(image) == image.split("@")[1]
    assert outcome.urls == {name: f"http://{name}-default.hk.internal"}
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before

    # the image (gunicorn serving the Flask app) answers on $PORT through the gateway, by the URL's host
    port = free_port()
    pulled = builder.buildah.run(["pull", "--tls-verify=false", image]).stdout.strip().splitlines()[-1]
    proc = start(builder, pulled, port)
    gateway.routes[f"{name}-default.hk.internal"] = port
    try:
        from hybrid_knative.dev.deploy import wait_answers

        reply = wait_answers(cluster.kube(), outcome.urls[name], timeout=30, interval=0.2, resolver=NO_DNS)
        assert (reply.status, reply.body) == (200, b"Hello World!\n")
    finally:
        stop(proc)


def test_a_refused_apply_removes_what_this_run_created(make_dev_cluster: Callable[..., DevCluster],
                                                       builder: Builder, tmp_path: Path) -> None:
    """The Trigger is refused (as Eventing's webhook would): the Service created just before is removed."""
    cluster = make_dev_cluster()
    path = "patch /apis/eventing.knative.dev/v1/namespaces/default/triggers/img-custom-0"
    cluster.server.emulator[path] << 422 << {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                             "code": 422, "reason": "Invalid", "message": "denied by the webhook"}
    (tmp_path / "hybrid-knative.yaml").write_text(
        "name: img\nfunctions:\n  img:\n    image: docker.io/library/nginx:1.27\n    events:\n      - custom: {}\n")
    with pytest.raises(Exception, match="422"):
        deploy(load_project(tmp_path), cluster.kube(), builder.buildah, None, QUIET, FAST)
    _no_user_objects(cluster)
    assert any(r.method == "DELETE" and r.path.endswith("/services/img") for r in cluster.server.requests)
