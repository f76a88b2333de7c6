"""Resource profiles: structured transforms and the footprint computed from rendered objects."""

from __future__ import annotations

import pytest

from hybrid_knative.addon import render
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.profiles import apply_profile, cpu_millis, footprint, memory_mib
from hybrid_knative.kube.objects import Manifest, containers
from hybrid_knative.progress import Status


def objects(**overrides: object) -> list[Manifest]:
    config = Config(verify=False, **overrides)  # type: ignore[arg-type]
    _, rendered = render(config, KubeVersion.parse("1.34"), Status(verbosity=-1))
    return [o for r in rendered for o in r.objects]


def test_units() -> None:
    assert cpu_millis("100m") == 100 and cpu_millis("1") == 1000 and cpu_millis("0.5") == 500
    assert memory_mib("64Mi") == 64 and memory_mib("1Gi") == 1024 and memory_mib("512Ki") == 0.5
    assert memory_mib(str(2 * 1024 * 1024)) == 2


def test_default_install_matches_the_upstream_figures() -> None:
    fp = footprint(objects())
    # knative-notes.md: Serving 600m/360Mi, Kourier 400m/400Mi, Eventing 325m/214Mi, MT broker 300m/300Mi, 15 pods
    assert 1500 <= fp.cpu_millis <= 1700 and 1150 <= fp.memory_mib <= 1350 and fp.pods == 15


def test_hpa_min_replicas_count_as_pods() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "n"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {
               "cpu": "100m", "memory": "10Mi"}}}]}}}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "h", "namespace": "n"},
           "spec": {"minReplicas": 3, "maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "a"}}}
    assert footprint([dep]).pods == 1
    fp = footprint([dep, hpa])
    assert (fp.pods, fp.cpu_millis, fp.memory_mib) == (3, 300, 30)


def test_edge_profile_cuts_requests_and_replicas() -> None:
    standard, edge = objects(), objects(profile="edge")
    fs, fe = footprint(standard), footprint(edge)
    assert fe.cpu_millis <= fs.cpu_millis / 4 and fe.memory_mib <= fs.memory_mib / 2
    for obj in edge:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            assert int(obj["spec"].get("replicas", 1)) <= 1
            for c in containers(obj):
                requests = (c.get("resources") or {}).get("requests") or {}
                assert cpu_millis(requests.get("cpu", "0")) <= 25 and memory_mib(requests.get("memory", "0")) <= 32
        if obj["kind"] == "HorizontalPodAutoscaler":
            assert obj["spec"]["minReplicas"] == 1
    # limits are kept: only what the scheduler reserves changes
    limits = {(o["metadata"]["name"], c["name"]): (c.get("resources") or {}).get("limits")
              for o in standard for c in containers(o)}
    assert {(o["metadata"]["name"], c["name"]): (c.get("resources") or {}).get("limits")
            for o in edge for c in containers(o)} == limits


def test_standard_profile_changes_nothing() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
           "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "resources": {
               "requests": {"cpu": "1"}}}]}}}}
    assert apply_profile([dep], "standard") == [dep]
    [out] = apply_profile([dep], "edge")
    assert out["spec"]["replicas"] == 1 and out["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "25m"}}
    assert dep["spec"]["replicas"] == 3  # the input is not mutated


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        Config(profile="tiny")
    assert "unknown profile" in err.value.brief and "edge" in (err.value.resolution or "")
