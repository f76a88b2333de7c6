"""The project file and serverless.yml through one model: valid files, errors that name the line, every event
kind translated, templates that load and pass their own tests; every rendered object strictly valid."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.dev import templates
from hybrid_knative.dev.project import load_project
from hybrid_knative.dev.render import render
from hybrid_knative.errors import ConfigError
from tests.harness.validation import ManifestValidator

DIGEST = "sha256:" + "ab" * 32


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def project_with(tmp_path: Path, text: str, *, dockerfile: bool = True) -> Path:
    if dockerfile:
        write(tmp_path, "Dockerfile", "FROM docker.io/library/python:3.12-slim\n")
    return write(tmp_path, "hybrid-knative.yaml", text)


FULL = """
name: shop
namespace: team-a
functions:
  orders:
    build: {context: ., dockerfile: Dockerfile}
    env: {GREETING: hi, RETRIES: 3, DEBUG: true}
    port: 9000
    scale: {min: 1, max: 5, initial: 2}
    concurrency: 10
    timeout: 120
    gpu: {vendor: amd, count: 1}
    events:
      - custom: {filter: {attributes: {type: order.created, source: web}}}
      - cron: {schedule: "*/5 * * * *", data: {tick: true}}
  prices:
    image: docker.io/library/nginx:1.27
"""


def test_full_project_renders_valid_objects(tmp_path: Path, validator: ManifestValidator) -> None:
    project = load_project(project_with(tmp_path, FULL))
    assert project.name == "shop" and project.namespace == "team-a"
    orders = project.function("orders")
    assert orders.dockerfile == tmp_path / "Dockerfile" and orders.env == (
        ("GREETING", "hi"), ("RETRIES", "3"), ("DEBUG", "true"))
    objs = render(project, {"orders": f"localhost:32000/team-a/orders@{DIGEST}"})
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Service", "orders"), ("Service", "prices"), ("Trigger", "orders-custom-0"), ("PingSource", "orders-cron-1")]
    assert validator.validate_all(objs) == []
    ksvc = objs[0]
    assert ksvc["metadata"]["labels"] == {"hybrid-knative.dev/project": "shop", "hybrid-knative.dev/function": "orders"}
    assert "app.kubernetes.io/managed-by" not in ksvc["metadata"]["labels"]
    spec = ksvc["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"].endswith(f"@{DIGEST}")
    assert spec["containers"][0]["resources"] == {"limits": {"amd.com/gpu": "1"}}
    assert spec["containerConcurrency"] == 10 and spec["timeoutSeconds"] == 120
    assert ksvc["spec"]["template"]["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "5",
        "autoscaling.knative.dev/initial-scale": "2"}
    trigger, ping = objs[2], objs[3]
    assert trigger["spec"] == {"broker": "default",
                               "filter": {"attributes": {"type": "order.created", "source": "web"}},
                               "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                                      "name": "orders"}}}
    assert ping["spec"]["data"] == '{"tick": true}' and ping["spec"]["contentType"] == "application/json"


def test_the_validator_would_catch_a_wrong_field(tmp_path: Path, validator: ManifestValidator) -> None:
    objs = render(load_project(project_with(tmp_path, FULL)), {"orders": f"r/x@{DIGEST}"})
    broken = {**objs[2], "spec": {**objs[2]["spec"], "filters": {}}}
    assert validator.errors(broken)


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("name: x\nfunctions:\n  a:\n    build: {context: .}\n    scael: {min: 1}\n", 5, "unknown field 'scael'"),
    ("name: x\nfunctions:\n  a:\n    scale: {min: -1}\n", 4, "less than the minimum"),
    ("name: Bad_Name\nfunctions:\n  a: {}\n", 1, "not a valid name"),
    ("name: x\nfunctions:\n  a:\n    image: r/x:1\n    build: {}\n", 3, "either `build` or `image`"),
    ("name: x\nfunctions:\n  a:\n    events:\n      - awsSqs: {arn: x}\n", 5, "AWS SQS"),
    ("name: x\nfunctions:\n  a:\n    events:\n      - gcpPubSub: {topic: x}\n", 5, "Google Cloud Pub/Sub"),
    ("name: x\nfunctions:\n  a:\n    events:\n      - cron: {schedule: every minute}\n", 5, "does not match"),
    ("name: x\nfunctions: {}\n", 2, "should be non-empty"),
    ("name: x\nfunctions:\n  a:\n    scale: {min: 3, max: 1}\n", 3, "min (3) is larger than max (1)"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = project_with(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_project(path)
    assert f"{path}:{line}:" in str(err.value) and needle in str(err.value), str(err.value)
    assert err.value.resolution


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = project_with(tmp_path, "name: x\nfunctions:\n  a:\n    env: {A: 1\n  b: {}\n")
    with pytest.raises(ConfigError) as err:
        load_project(path)
    assert f"{path}:5:" in err.value.brief and "not valid YAML" in err.value.brief


def test_missing_dockerfile_and_no_project(tmp_path: Path) -> None:
    path = project_with(tmp_path, "name: x\nfunctions:\n  a: {}\n", dockerfile=False)
    with pytest.raises(ConfigError) as err:
        load_project(path)
    assert "missing Dockerfile" in str(err.value) and f"{path}:3:" in str(err.value)
    with pytest.raises(ConfigError) as none:
        load_project(tmp_path / "sub")
    assert "hybrid-knative new" in str(none.value)


# --- serverless.yml ----------------------------------------------------------------------------------

KNATIVE_DOCKER = {  # serverless-knative's knative-docker template, as it was
    "serverless.yml": """
        service: my-knative-project

        frameworkVersion: ">=1.28.0"

        provider:
          name: knative
          # optional Docker Hub credentials you want to use for image upload
          docker:
            username: ${env:DOCKER_HUB_USERNAME}
            password: ${env:DOCKER_HUB_PASSWORD}

        functions:
          hello-world:
            handler: hello-world.dockerfile
            context: ./code

        plugins:
          - serverless-knative
        """,
    "code/app.py": """
        import os

        from flask import Flask

        app = Flask(__name__)


        @app.route('/')
        def hello_world():
            target = os.environ.get('TARGET', 'World')
            return 'Hello {}!\\n'.format(target)


        if __name__ == "__main__":
            app.run(debug=True, host='0.0.0.0', port=int(os.environ.get('PORT', 8080)))
        """,
    "code/hello-world.dockerfile": """
        FROM python:3.7-slim

        ENV APP_HOME /app
        WORKDIR $APP_HOME
        COPY . .

        RUN pip install Flask gunicorn

        CMD exec gunicorn --bind :$PORT --workers 1 --threads 8 app:app
        """,
}


def reconstruct_knative_docker(root: Path) -> Path:
    for name, text in KNATIVE_DOCKER.items():
        write(root, name, text)
    return root


def test_knative_docker_serverless_project_reads_unchanged(tmp_path: Path, validator: ManifestValidator) -> None:
    root = reconstruct_knative_docker(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    project = load_project(root)
    fn = project.function("hello-world")
    assert (project.name, fn.service) == ("my-knative-project", "my-knative-project-hello-world")
    assert fn.context == root / "code" and fn.dockerfile == root / "code" / "hello-world.dockerfile"
    assert any("provider.docker" in n for n in project.notes)
    objs = render(project, {"hello-world": f"localhost:32000/default/my-knative-project-hello-world@{DIGEST}"})
    assert validator.validate_all(objs) == []
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing rewritten


SERVERLESS_ALL_EVENTS = """
service: events-demo
provider:
  name: knative
functions:
  consumer:
    handler: Dockerfile
    environment:
      MODE: demo
    events:
      - custom:
          filter:
            attributes:
              type: greeting
      - cron:
          schedule: '* * * * *'
          data: '{"message": "Hello world from a Cron event source!"}'
      - kafka:
          consumerGroup: my-group
          bootstrapServers:
            - my-cluster-kafka-bootstrap.kafka:9092
          topics:
            - my-topic
  prebuilt:
    handler: docker.io/library/nginx:1.27
"""


def test_serverless_every_event_kind(tmp_path: Path, validator: ManifestValidator) -> None:
    write(tmp_path, "Dockerfile", "FROM docker.io/library/python:3.12-slim\n")
    write(tmp_path, "serverless.yml", SERVERLESS_ALL_EVENTS)
    project = load_project(tmp_path)
    consumer = project.function("consumer")
    assert [e.kind for e in consumer.events] == ["custom", "cron", "kafka"]
    assert consumer.env == (("MODE", "demo"),)
    assert project.function("prebuilt").image == "docker.io/library/nginx:1.27"
    objs = render(project, {"consumer": f"localhost:32000/default/events-demo-consumer@{DIGEST}"})
    by_kind = {o["kind"]: o for o in objs}
    assert by_kind["Trigger"]["spec"]["filter"] == {"attributes": {"type": "greeting"}}
    assert by_kind["PingSource"]["spec"]["data"] == '{"message": "Hello world from a Cron event source!"}'
    kafka = by_kind["KafkaSource"]
    assert kafka["apiVersion"] == "sources.knative.dev/v1beta1" and kafka["spec"]["topics"] == ["my-topic"]
    assert kafka["spec"]["consumerGroup"] == "my-group"
    assert kafka["spec"]["sink"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                            "name": consumer.service}
    # Serving and Eventing objects validate against the vendored CRDs, the KafkaSource against our own CRD
    # written from Knative's API reference (tests/fixtures/crds/kafkasources.sources.knative.dev.yaml)
    assert validator.validate_all(objs) == []


@pytest.mark.parametrize(("change", "needle"), [
    (lambda s: s.pop("sink"), "'sink' is a required property"),
    (lambda s: s.update(topics=[]), "$.spec.topics"),
    (lambda s: s.pop("bootstrapServers"), "'bootstrapServers' is a required property"),
    (lambda s: s.update(initialOffset="newest"), "'newest' is not one of ['earliest', 'latest']"),
    (lambda s: s.update(topic="t"), "unknown field 'topic'"),
    (lambda s: s.update(sink={"ref": {"kind": "Service"}}), "'name' is a required property"),
    (lambda s: s.update(net={"sasl": {"enable": "yes"}}), "$.spec.net.sasl.enable"),
])
def test_a_bad_kafka_source_is_refused(tmp_path: Path, validator: ManifestValidator,
                                       change: Callable[[dict[str, Any]], object], needle: str) -> None:
    write(tmp_path, "Dockerfile", "FROM docker.io/library/python:3.12-slim\n")
    write(tmp_path, "serverless.yml", SERVERLESS_ALL_EVENTS)
    objs = render(load_project(tmp_path), {"consumer": f"localhost:32000/default/events-demo-consumer@{DIGEST}"})
    kafka = copy.deepcopy(next(o for o in objs if o["kind"] == "KafkaSource"))
    assert validator.errors(kafka) == []
    assert validator.errors({**kafka, "apiVersion": "sources.knative.dev/v1"}) == []  # v1: the same shape
    change(kafka["spec"])
    for api_version in ("sources.knative.dev/v1beta1", "sources.knative.dev/v1"):
        errors = validator.errors({**kafka, "apiVersion": api_version})
        assert errors and any(needle in e for e in errors), errors


@pytest.mark.parametrize(("event", "needle"), [
    ("awsSqs:\n          arn: arn:aws:sqs:x", "AWS SQS"),
    ("gcpPubSub:\n          topic: t", "Google Cloud Pub/Sub"),
    ("teleport: {}", "unknown event kind `teleport`"),
])
def test_serverless_cloud_only_events_are_clear_errors(tmp_path: Path, event: str, needle: str) -> None:
    write(tmp_path, "Dockerfile", "FROM x\n")
    path = write(tmp_path, "serverless.yml", f"""
        service: s
        provider:
          name: knative
        functions:
          f:
            handler: Dockerfile
            events:
              - {event}
        """)
    with pytest.raises(ConfigError) as err:
        load_project(tmp_path)
    assert needle in str(err.value) and f"{path}:8:" in str(err.value), str(err.value)


def test_serverless_other_provider_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "serverless.yml", "service: s\nprovider:\n  name: aws\nfunctions:\n  f:\n    handler: x.y\n")
    with pytest.raises(ConfigError) as err:
        load_project(tmp_path)
    assert f"{path}:3:" in str(err.value) and "only `provider: name: knative`" in str(err.value)


# --- templates -------------------------------------------------------------------------------------

@pytest.mark.parametrize("template", templates.TEMPLATES)
def test_each_template_makes_a_loadable_project(tmp_path: Path, template: str, validator: ManifestValidator) -> None:
    dest = tmp_path / "hello"
    written = templates.create("hello", template, dest)
    assert all(p.is_file() for p in written) and (dest / "README.md").is_file()
    assert not [p for p in written if p.suffix == ".j2"]
    project = load_project(dest)
    objs = render(project, {fn.name: f"localhost:32000/default/{fn.service}@{DIGEST}" for fn in project.functions})
    assert validator.validate_all(objs) == []
    with pytest.raises(ConfigError, match="not empty"):
        templates.create("hello", template, dest)


@pytest.mark.parametrize("template", ["python-http", "python-cloudevents"])
def test_python_templates_pass_their_own_tests(tmp_path: Path, template: str) -> None:
    dest = tmp_path / "fn"
    templates.create("fn", template, dest)
    out = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=dest, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "OK" in out.stderr, out.stderr


def test_knative_docker_template_passes_its_own_test(tmp_path: Path) -> None:
    dest = tmp_path / "fn"
    templates.create("fn", "knative-docker", dest)
    out = subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=dest / "code", capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("template", ["node-http", "node-cloudevents"])
def test_node_templates_pass_their_own_tests(tmp_path: Path, template: str) -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node")
    dest = tmp_path / "fn"
    templates.create("fn", template, dest)
    out = subprocess.run(["node", "--test"], cwd=dest, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_template_code_is_lint_clean() -> None:
    root = Path(templates.__file__).parent / "templates"
    out = subprocess.run([sys.executable, "-m", "ruff", "check", str(root)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout


def test_unknown_template_and_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown template 'go-http'") as err:
        templates.create("x", "go-http", tmp_path / "x")
    assert "python-http" in str(err.value.resolution)
    with pytest.raises(ConfigError, match="invalid function name"):
        templates.create("Hello_World", "python-http", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
