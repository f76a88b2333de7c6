"""The image list is derived from the exact rendered objects; a check catches any image it would miss."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from hybrid_knative import addon
from hybrid_knative.airgap.images import ImageRef, images_in, parse_image_list, unlisted
from hybrid_knative.catalog import load_catalog
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore

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
