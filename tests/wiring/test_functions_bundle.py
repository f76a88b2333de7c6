"""`bundle create --with functions` carries the templates' base images and a wheelhouse; `bundle import` puts
the base images in the cluster registry under mirror_path() and the wheelhouse in the state folder, so an
offline build (docker.io mirrored to that registry) finds its FROM image. Real skopeo, docker-registry,
containerd and buildah."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_knative.airgap import bundle as bundle_mod
from hybrid_knative.cli.main import cli
from hybrid_knative.dev.offline import base_images, mirror_path
from tests.airgap.conftest import IMAGES, Containerd, Registry
from tests.airgap.tinyimages import write_image

pytestmark = pytest.mark.airgap


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def fake_wheelhouse(folder: Path) -> Path:
    folder.mkdir()
    for name in ("hybrid_knative-0.1.0-py3-none-any.whl", "cyclonedds-11.0.1-cp311-cp311-manylinux2014_x86_64.whl",
                 "click-8.5.1-py3-none-any.whl"):
        (folder / name).write_bytes(name.encode() * 10)
    return folder


def test_functions_bundle_import_and_offline_base_image(source_registry: Registry, registry: Registry,
                                                        containerd: Containerd, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    for image in base_images():  # tiny stand-ins at the base images' paths in the "internet" registry
        write_image(layout, image, arches=("amd64", "arm64"), payload=image)
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{layout}:{image}", f"docker://{source_registry.host}/{mirror_path(image)}"],
                       check=True, timeout=120)
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(IMAGES) + "\n")
    wheels = fake_wheelhouse(tmp_path / "wh")
    out = tmp_path / "site.bundle"
    code, output = run("bundle", "create", "-o", str(out), "--arch", "amd64,arm64", "--knative", "1.23",
                       "--source-registry", f"http://{source_registry.host}", "--images-from", str(listing),
                       "--with", "functions", "--wheelhouse", str(wheels))
    assert code == 0, output
    manifest = bundle_mod.read_manifest(out)
    names = {i.name for i in manifest.images}
    assert set(base_images()) <= names and set(IMAGES) <= names
    assert "functions" in manifest.components
    assert {f"upstream/wheelhouse/{p.name}" for p in wheels.iterdir()} <= set(manifest.files)

    state = tmp_path / "state"
    code, output = run("bundle", "import", str(out), "--ctr", " ".join(containerd.ctr), "--state-dir", str(state),
                       "--functions-registry", registry.host)
    assert code == 0, output
    assert f"{len(base_images())} base images pushed to {registry.host}" in output
    assert "deploy --offline" in output
    assert sorted(p.name for p in (state / "wheelhouse").iterdir()) == sorted(p.name for p in wheels.iterdir())
    for image in base_images():
        got = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              f"docker://{registry.host}/{mirror_path(image)}"], capture_output=True, text=True,
                             timeout=60)
        assert got.returncode == 0, got.stderr

    # an offline build resolves docker.io/library/python:3.12-slim through the cluster registry
    from hybrid_knative.system.buildah import Buildah
    from hybrid_knative.system.runner import Runner

    buildah = Buildah(Runner(), tmp_path / "b-root", tmp_path / "b-run", {"docker.io": registry.host})
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM docker.io/library/python:3.12-slim\nLABEL offline=yes\n")
    built = buildah.bud(tmp_path / "ctx", tmp_path / "ctx" / "Dockerfile", "localhost/offline:1")
    assert built.image_id
    dataclasses.replace(buildah).remove_image("localhost/offline:1")


def test_wheelhouse_options_need_with_functions(tmp_path: Path) -> None:
    code, output = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--wheelhouse", str(tmp_path))
    assert code != 0 and "--with functions" in output
    (tmp_path / "empty").mkdir()
    code, output = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--with", "functions",
                       "--wheelhouse", str(tmp_path / "empty"), "--images-from", str(tmp_path / "none.txt"))
    assert code != 0
