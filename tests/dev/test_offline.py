"""Offline builds: the base images `bundle create --with functions` must carry come from the templates'
Dockerfiles; a wheelhouse is visible to a real build's RUN steps (with a pip.conf pointing at it) and is
not in the image."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from hybrid_knative.dev.offline import base_images, mirror_path, wheelhouse_volumes
from hybrid_knative.errors import ConfigError
from tests.dev.conftest import Builder

pytestmark = pytest.mark.integration


def test_base_images_are_the_templates_from_lines() -> None:
    assert base_images() == ["docker.io/library/node:22-slim", "docker.io/library/python:3.12-slim"]
    assert mirror_path("docker.io/library/python:3.12-slim") == "library/python:3.12-slim"
    assert mirror_path("python:3.7-slim") == "library/python:3.7-slim"
    assert mirror_path("quay.io/team/img:1") == "team/img:1"


def test_wheelhouse_is_mounted_for_run_steps_only(builder: Builder, tmp_path: Path) -> None:
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    # exec-form RUN (no shell in the test's base image): record what the build sees
    (ctx / "Dockerfile").write_text(
        "FROM docker.io/library/python:3.12-slim\n"
        'RUN ["python3", "-c", "import os, json; json.dump({\'wheels\': os.listdir(\'/wheels\'), '
        "'conf': open('/etc/pip.conf').read()}, open('/seen.json', 'w'))\"]\n")
    with wheelhouse_volumes(wheels) as volumes:
        buildah = dataclasses.replace(builder.with_mirror(), volumes=tuple(volumes))
        buildah.bud(ctx, ctx / "Dockerfile", "localhost/test/wheels:1")
    b = builder.buildah
    base = ["buildah", "--root", str(b.root), "--runroot", str(b.runroot), "--storage-driver", "vfs"]
    ctr = subprocess.run([*base, "from", "localhost/test/wheels:1"], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        mount = Path(subprocess.run([*base, "mount", ctr], capture_output=True, text=True, check=True).stdout.strip())
        seen = json.loads((mount / "seen.json").read_text())
        assert seen["wheels"] == ["demo-1.0-py3-none-any.whl"]
        assert "no-index = true" in seen["conf"] and "find-links = /wheels" in seen["conf"]
        assert not any((mount / "wheels").iterdir()) if (mount / "wheels").exists() else True
        assert not (mount / "etc" / "pip.conf").exists() or (mount / "etc" / "pip.conf").stat().st_size == 0
    finally:
        subprocess.run([*base, "rm", ctr], capture_output=True)


def test_missing_wheelhouse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="wheelhouse not found"), wheelhouse_volumes(tmp_path / "nope"):
        pass
