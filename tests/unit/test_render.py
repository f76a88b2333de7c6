"""Rendering: structured transforms and the plan for every supported Kubernetes version."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.addon import render
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import IntegrityError
from hybrid_knative.kube.objects import images, ref_of
from hybrid_knative.manifests import fix_pdb, pin_images
from hybrid_knative.progress import Status

KUBE_VERSIONS = ["1.32", "1.33", "1.34", "1.35", "1.36"]


def test_fix_pdb() -> None:
    pdb = {"kind": "PodDisruptionBudget", "spec": {"minAvailable": "80%", "selector": {"matchLabels": {"a": "b"}}}}
    fixed = fix_pdb(pdb)
    assert fixed["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"a": "b"}}}
    assert pdb["spec"]["minAvailable"] == "80%"  # input untouched
    assert fix_pdb({"kind": "Deployment", "spec": {}}) == {"kind": "Deployment", "spec": {}}


def test_pin_images_in_all_containers() -> None:
    dep = {"kind": "Deployment", "spec": {"template": {"spec": {
        "initContainers": [{"name": "i", "image": "envoy:v1-latest"}],
        "containers": [{"name": "c", "image": "envoy:v1-latest"}, {"name": "d", "image": "other:1"}]}}}}
    pinned = pin_images(dep, {"envoy:v1-latest": "envoy:v1.0"})
    assert images(pinned) == ["envoy:v1.0", "envoy:v1.0", "other:1"]
    assert images(dep)[0] == "envoy:v1-latest"


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_plan_objects(kube: str) -> None:
    release, rendered = render(Config(), KubeVersion.parse(kube), Status(verbosity=-1))
    names = [r.step.name for r in rendered]
    assert names[:4] == ["install_serving_crds", "install_serving_core", "install_kourier", "configure_serving"]
    assert names[4:8] == ["configure_ingress_address", "configure_domain", "configure_cluster_dns",
                          "configure_host_dns"]
    assert names[-1] == "mark_enabled"
    by_step = {r.step.name: r.objects for r in rendered}
    applied = [o for r in rendered if r.step.applies for o in r.objects]
    refs = [ref_of(o) for o in applied]
    assert len(refs) == len(set(refs)), "each object has exactly one owning step"
    assert all(o["kind"] == "CustomResourceDefinition" for o in by_step["install_serving_crds"])
    assert not [o for o in by_step["install_serving_core"] if o["kind"] == "CustomResourceDefinition"]
    pdbs = [o for o in applied if o["kind"] == "PodDisruptionBudget"]
    assert {p["metadata"]["name"] for p in pdbs} == {"activator-pdb", "webhook-pdb", "3scale-kourier-gateway-pdb",
                                                     "eventing-webhook"}
    assert all(p["spec"].get("maxUnavailable") == 1 and "minAvailable" not in p["spec"] for p in pdbs)
    patches = {o["metadata"]["name"]: o["data"] for o in by_step["configure_serving"]}
    assert patches["config-network"] == {"ingress-class": "kourier.ingress.networking.knative.dev"}
    skip = patches["config-deployment"]["registries-skipping-tag-resolving"].split(",")
    assert {"localhost:32000", "127.0.0.1:32000", "kind.local", "ko.local", "dev.local"} == set(skip)
    envoy = [i for o in applied for i in images(o) if "envoy" in i]
    assert envoy and all(not i.endswith("-latest") for i in envoy)
    assert {o["metadata"]["labels"]["app.kubernetes.io/version"] for o in by_step["install_serving_core"]
            if o["kind"] == "Deployment"} == {release.component("knative-serving").version}


def test_corrupt_vendored_file_stops_rendering(tmp_path: Path) -> None:
    from hybrid_knative.catalog import load_catalog

    f = load_catalog().release("1.23").component("net-kourier").file("kourier.yaml")
    bad = tmp_path / f.path
    bad.parent.mkdir(parents=True)
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: evil}\n")
    with pytest.raises(IntegrityError, match="checksum mismatch for net-kourier/1.23.0/kourier.yaml"):
        render(Config(upstream_dirs=(tmp_path,)), KubeVersion.parse("1.34"), Status(verbosity=-1))
