"""Real builds: every template built with buildah (vfs, chroot) from its unchanged Dockerfile — `FROM
docker.io/library/…` resolved through a registries.conf mirror to the local registry —, pushed to a real
registry (the digest buildah reports is the one skopeo sees), then started with `buildah run --isolation chroot`
and asked over HTTP on $PORT (CloudEvents templates: a binary-mode event, the reply checked with the
`cloudevents` SDK). Build failures and a registry that is down are clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cloudevents.http import from_http

from hybrid_knative.dev import templates
from hybrid_knative.dev.project import load_project
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.system.buildah import Buildah, registries_conf
from hybrid_knative.system.runner import Runner
from tests.airgap.conftest import free_port
from tests.dev.conftest import NODE_BASE, Builder, need, skopeo_digest

pytestmark = pytest.mark.integration


def start(builder: Builder, image: str, port: int) -> subprocess.Popen[bytes]:
    """Run the image's own CMD with `buildah run --isolation chroot` (host network, bound to 127.0.0.1)."""
    b = builder.buildah
    base = ["buildah", "--root", str(b.root), "--runroot", str(b.runroot), "--storage-driver", "vfs"]
    info = json.loads(subprocess.run([*base, "inspect", "--type", "image", image],
                                     capture_output=True, text=True, check=True).stdout)
    cmd = info["OCIv1"]["config"]["Cmd"]
    ctr = subprocess.run([*base, "from", image], capture_output=True, text=True, check=True).stdout.strip()
    return subprocess.Popen([*base, "run", "--isolation", "chroot", "--env", f"PORT={port}", "--env", "HOST=127.0.0.1",
                             "--env", "K_SERVICE=hello", ctr, "--", *cmd], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> str:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=15)
    return out.decode("utf-8", "replace")


def ask(port: int, *, data: bytes | None = None, headers: dict[str, str] | None = None,
        proc: subprocess.Popen[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Bounded loop until the server answers (at most ~20 s), then the answer."""
    last: Exception | None = None
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(f"the container exited with {proc.returncode}")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"no answer on port {port}: {last}")


@pytest.mark.parametrize("template", templates.TEMPLATES)
def test_template_builds_pushes_and_answers_on_port(builder: Builder, tmp_path: Path, template: str) -> None:
    if template.startswith("node") and not (builder.storage / NODE_BASE.replace("/", "_").replace(":", "_")).exists():
        pytest.skip("needs node on this host for the node base image")
    dest = tmp_path / "hello"
    templates.create("hello", template, dest)
    project = load_project(dest)
    fn = project.functions[0]
    assert fn.dockerfile is not None and fn.context is not None
    assert fn.dockerfile.read_text().startswith("FROM docker.io/library/")  # unchanged: the mirror resolves it
    buildah = builder.with_mirror()
    tag = f"localhost/test/{template}:1"
    buildah.bud(fn.context, fn.dockerfile, tag)
    digest = buildah.push(tag, f"{builder.registry.host}/default/{fn.service}:latest")
    assert skopeo_digest(f"{builder.registry.host}/default/{fn.service}@{digest}") == digest
    assert skopeo_digest(f"{builder.registry.host}/default/{fn.service}:latest") == digest

    port = free_port()
    proc = start(builder, tag, port)
    try:
        if template.endswith("cloudevents"):
            headers = {"ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "/test", "ce-type": "greeting",
                       "content-type": "application/json"}
            status, reply_headers, body = ask(port, data=b'{"name": "x"}', headers=headers, proc=proc)
            assert status == 200, body
            event = from_http({k.lower(): v for k, v in reply_headers.items()}, body)
            assert event["type"] == "dev.hybrid-knative.reply" and event["source"] == "/hello"
            assert event.data == {"hello": "x", "in_reply_to": "e-1"}
        elif template == "knative-docker":
            status, _, body = ask(port, proc=proc)
            assert (status, body) == (200, b"Hello World!\n")
        else:
            status, _, body = ask(port, data=b'{"name": "x"}', headers={"content-type": "application/json"},
                                  proc=proc)
            assert status == 200 and json.loads(body)["hello"] == "x"
    finally:
        stop(proc)


def test_rebuild_of_unchanged_context_keeps_the_digest(builder: Builder, tmp_path: Path) -> None:
    """What makes re-deploys write nothing: the same context gives the same pushed digest."""
    dest = tmp_path / "same"
    templates.create("same", "python-http", dest)
    buildah = builder.with_mirror()
    digests = []
    for _ in range(2):
        buildah.bud(dest, dest / "Dockerfile", "localhost/test/same:1")
        digests.append(buildah.push("localhost/test/same:1", f"{builder.registry.host}/default/same:latest"))
    (dest / "func.py").write_text((dest / "func.py").read_text().replace('"world"', '"planet"'))
    buildah.bud(dest, dest / "Dockerfile", "localhost/test/same:1")
    digests.append(buildah.push("localhost/test/same:1", f"{builder.registry.host}/default/same:latest"))
    assert digests[0] == digests[1] != digests[2]


def test_build_failure_shows_the_log_tail(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/python:3.12-slim\nCOPY does-not-exist /x\n")
    with pytest.raises(PermanentError) as err:
        builder.with_mirror().bud(tmp_path, tmp_path / "Dockerfile", "localhost/test/broken:1")
    assert "the image build failed" in err.value.brief
    assert "does-not-exist" in str(err.value.details)
    assert err.value.resolution


def test_missing_base_image_is_explained(builder: Builder, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/ruby:3-slim\n")
    mirror_only = Buildah(builder.buildah.runner, builder.buildah.root, builder.buildah.runroot,
                          {"docker.io": builder.registry.host})
    # no network here: docker.io itself is unreachable, and the mirror has no ruby image
    with pytest.raises(PermanentError) as err:
        mirror_only.bud(tmp_path, tmp_path / "Dockerfile", "localhost/test/ruby:1")
    assert "base image" in str(err.value.resolution)


def test_registry_down_is_a_clear_error(builder: Builder) -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(PermanentError) as err:
        builder.buildah.push(f"localhost/base/{'library/python:3.12-slim'}", f"127.0.0.1:{port}/default/x:latest")
    assert f"127.0.0.1:{port}" in err.value.brief and "registry" in str(err.value.resolution)


def test_without_buildah_a_clear_instruction(tmp_path: Path) -> None:
    need("buildah")
    runner = Runner().with_env({"PATH": str(tmp_path)})
    with pytest.raises(ConfigError) as err:
        Buildah(runner, tmp_path / "r", tmp_path / "rr").check_available()
    assert "snap" in str(err.value.resolution) and "apt install buildah" in str(err.value.resolution)


def test_registries_conf_mirrors_docker_io() -> None:
    tomllib = pytest.importorskip("tomllib")

    conf = tomllib.loads(registries_conf({"docker.io": "127.0.0.1:5000", "quay.io": "mirror.example.com"}))
    by_prefix = {r["prefix"]: r for r in conf["registry"]}
    assert by_prefix["docker.io"]["mirror"] == [{"location": "127.0.0.1:5000", "insecure": True}]
    assert by_prefix["quay.io"]["mirror"] == [{"location": "mirror.example.com", "insecure": False}]
