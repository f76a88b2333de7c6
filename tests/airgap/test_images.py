"""The image list is derived from the exact rendered objects; a check catches any image it would miss."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from hybrid_knative import addon
from hybrid_knative.catalog import load_catalog
from hybrid_knative.cli.bundle import BundleContents, bundle_contents
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError
from hybrid_knative.manifests.images import ImageRef, images_in, parse_image_list, unlisted
from hybrid_knative.progress import Status
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore
from tests.airgap.conftest import IMAGES, Registry

pytestmark = pytest.mark.airgap
LINES = [r.line for r in load_catalog().releases]
# independent of the code under test: every YAML string that looks like REGISTRY/PATH:TAG or @sha256
GREP = re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)+/[a-z0-9._/-]+(?::[A-Za-z0-9._-]+)?(?:@sha256:[0-9a-f]{64})?")


def rendered(line: str) -> list[dict]:
    config = Config(knative=line, offline=True)
    _, steps = addon.render(config, load_catalog().max_tested_kubernetes, Status(verbosity=-1))
    return [o for r in steps for o in r.objects]


@pytest.mark.parametrize("line", LINES)
def test_every_image_of_every_rendered_object_is_listed(line: str) -> None:
    objs = rendered(line)
    listed = images_in(objs)
    assert unlisted(objs, listed) == []
    text = yaml.safe_dump_all([o for o in objs if o["kind"] != "CustomResourceDefinition"])
    grepped = {m for m in GREP.findall(text) if "@" in m or ":" in m.rsplit("/", 1)[-1]}
    grepped = {g for g in grepped if not g.startswith(("http", "knative.dev/"))}
    assert {ImageRef.parse(g) for g in grepped} <= set(listed)
    names = {str(i) for i in listed}
    assert any("serving/cmd/queue@sha256:" in n for n in names)  # config-deployment + the Image CR
    assert not any("-latest" in n for n in names)  # floating Envoy tag pinned
    assert any(n.startswith("docker.io/envoyproxy/envoy:v1.") for n in names)


def test_the_check_fails_for_images_hidden_anywhere() -> None:
    objs = rendered(LINES[0])
    listed = images_in(objs)
    extra = copy.deepcopy(next(o for o in objs if o["kind"] == "ConfigMap"
                               and o["metadata"]["name"] == "config-deployment"))
    extra["data"]["queue-sidecar-image"] = "gcr.io/x/queue:v9"
    image_cr = {"apiVersion": "caching.internal.knative.dev/v1alpha1", "kind": "Image",
                "metadata": {"name": "i", "namespace": "n"}, "spec": {"image": "quay.io/a/b@sha256:" + "a" * 64}}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                                          "env": [{"name": "X_IMAGE", "value": "ghcr.io/y/z:1"}]}]}}}}
    missing = {i for _, i in unlisted([*objs, extra, image_cr, dep], listed)}
    assert missing == {"gcr.io/x/queue:v9", "quay.io/a/b@sha256:" + "a" * 64, "busybox:1.36", "ghcr.io/y/z:1"}


def test_microk8s_images_from_the_vendored_pinned_list() -> None:
    comp = load_catalog().extra_component("microk8s")
    text = UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)).read_text(comp.file("images.txt"))
    refs = {str(r) for r in parse_image_list(text, source="images.txt")}
    assert "registry.k8s.io/pause:3.10" in refs and "docker.io/library/busybox:1.28.4" in refs
    assert any(f.path == "microk8s/images.txt" for f in load_catalog().all_files())


@pytest.mark.parametrize(("text", "norm"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("envoyproxy/envoy:v1.37.0", "docker.io/envoyproxy/envoy:v1.37.0"),
    ("localhost:32000/app:1", "localhost:32000/app:1"),
    ("gcr.io/a/b@sha256:" + "0" * 64, "gcr.io/a/b@sha256:" + "0" * 64),
])
def test_image_ref_normalisation(text: str, norm: str) -> None:
    assert str(ImageRef.parse(text)) == norm


@pytest.mark.parametrize("text", ["", "a b", "gcr.io/a@sha256:short", "UPPER/case:1", "x:bad tag"])
def test_bad_image_refs(text: str) -> None:
    with pytest.raises(ConfigError):
        ImageRef.parse(text)


def test_unknown_extra_component() -> None:
    with pytest.raises(ConfigError, match="unknown component 'nope'"):
        load_catalog().extra_component("nope")


# --- the list `bundle create` pulls (cli.bundle.bundle_contents) ------------------------------------------

ROCM = {"docker.io/rocm/k8s-device-plugin:1.31.0.9", "docker.io/rocm/k8s-device-plugin:labeller-1.31.0.9"}


def contents(*extras: str, line: str = LINES[0], images_from: Path | None = None) -> BundleContents:
    return bundle_contents(Config(knative=line, offline=True), extras, images_from=images_from,
                           store=UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)), status=Status(verbosity=-1))


def _pinned(ref: ImageRef) -> bool:
    return bool(ref.digest) or (ref.tag is not None and ref.tag != "latest" and not ref.tag.endswith("-latest"))


@pytest.mark.parametrize("line", LINES)
def test_default_list_is_derived_plus_microk8s_own_images(line: str) -> None:
    got = contents(line=line)
    objs = rendered(line)
    comp = load_catalog().extra_component("microk8s")
    own = parse_image_list(UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)).read_text(comp.file("images.txt")),
                           source="images.txt")
    assert set(got.images) == set(images_in(objs)) | set(own)
    assert len(got.images) == len(set(got.images))  # de-duplicated
    # a digest-pinned and a tag-pinned busybox side by side must not break the ordering
    assert [str(i) for i in got.images] == sorted(str(i) for i in got.images)
    assert all(_pinned(i) for i in got.images), [str(i) for i in got.images if not _pinned(i)]
    assert not {str(i) for i in got.images} & ROCM
    assert "rocm-device-plugin" not in got.components and got.components["microk8s"] == comp.version
    assert {f.path for f in got.files} >= {"microk8s/images.txt"}
    assert not any(f.component == "rocm-device-plugin" for f in got.files)


def test_with_gpu_adds_exactly_the_two_pinned_rocm_images() -> None:
    plain, gpu = contents(), contents("gpu")
    added = {str(i) for i in set(gpu.images) - set(plain.images)}
    assert added == ROCM
    assert set(plain.images) <= set(gpu.images)
    assert all(_pinned(i) for i in gpu.images), [str(i) for i in gpu.images if not _pinned(i)]
    # the raw upstream manifests reference untagged images: the bundle must carry the Helm-pinned tags instead
    raw = {str(i) for f in load_catalog().extra_component("rocm-device-plugin").files.values()
           if f.path.endswith("-dp.yaml") or f.path.endswith("-labeller.yaml")
           for i in images_in(yaml.safe_load_all(UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)).read_text(f)))}
    assert raw and not raw & {str(i) for i in gpu.images}
    assert gpu.components["rocm-device-plugin"] == "1.31.0.9"
    assert {f.name for f in gpu.files if f.component == "rocm-device-plugin"} == {
        "k8s-ds-amdgpu-dp.yaml", "k8s-ds-amdgpu-labeller.yaml", "values.yaml"}
    assert contents("gpu", "gpu").images == gpu.images  # repeating --with changes nothing
    # upstream publishes them for amd64 only (the DaemonSets select amd64 nodes): --arch amd64,arm64 must not fail
    assert gpu.only_on == {ImageRef.parse(r): ("amd64",) for r in ROCM} and plain.only_on == {}


def test_images_from_replaces_the_derived_list(tmp_path: Path) -> None:
    listing = tmp_path / "images.txt"
    listing.write_text("# two images\nregistry.k8s.io/pause:3.10\n\nenvoyproxy/envoy:v1.37.0\n")
    got = contents("gpu", images_from=listing)
    assert [str(i) for i in got.images] == ["registry.k8s.io/pause:3.10", "docker.io/envoyproxy/envoy:v1.37.0"]
    assert got.components["rocm-device-plugin"] == "1.31.0.9"  # the upstream files still follow --with


@pytest.mark.parametrize(("extras", "images_from", "message"), [
    (("nope",), None, "unknown --with 'nope'"),
    ((), Path("/nonexistent/images.txt"), "image list not found"),
])
def test_bad_bundle_contents_input(extras: tuple[str, ...], images_from: Path | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        contents(*extras, images_from=images_from)


def test_cli_rejects_an_unknown_with_before_touching_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hybrid_knative.cli.main import cli

    out = tmp_path / "x.bundle"
    result = CliRunner().invoke(cli, ["bundle", "create", "-o", str(out), "--with", "cuda"])
    assert result.exit_code == 2 and "cuda" in result.output and "gpu" in result.output
    assert list(tmp_path.iterdir()) == []


# --- --registries-conf reaches skopeo: a real redirect of every registry to the local one ------------------

def test_registries_conf_redirects_the_pulls(source_registry: Registry, made: Path, tmp_path: Path) -> None:
    """No --source-registry: only the registries.conf sends skopeo to 127.0.0.1 (there is no internet here, and
    where there is, the real upstream images have other digests than the tiny stand-ins compared below)."""
    from click.testing import CliRunner

    from hybrid_knative.airgap import bundle as bundle_mod
    from hybrid_knative.cli.main import cli

    conf = tmp_path / "registries.conf"
    conf.write_text("".join(f'[[registry]]\nprefix = "{host}"\nlocation = "{source_registry.host}"\ninsecure = true\n\n'
                            for host in sorted({i.split("/", 1)[0] for i in IMAGES})))
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(IMAGES) + "\n")
    out = tmp_path / "conf.bundle"
    result = CliRunner().invoke(cli, ["bundle", "create", "-o", str(out), "--arch", "amd64,arm64", "--knative",
                                      LINES[0], "--registries-conf", str(conf), "--images-from", str(listing)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = {i.name: (i.digest, i.platforms) for i in bundle_mod.read_manifest(out).images}
    want = {i.name: (i.digest, i.platforms) for i in bundle_mod.read_manifest(made).images}
    assert got == want and set(got) == set(IMAGES)


def test_registries_conf_must_exist(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hybrid_knative.cli.main import cli

    out = tmp_path / "x.bundle"
    result = CliRunner().invoke(cli, ["bundle", "create", "-o", str(out), "--registries-conf",
                                      str(tmp_path / "missing.conf")])
    assert result.exit_code != 0 and "registries.conf not found" in result.output
    assert list(tmp_path.iterdir()) == []
