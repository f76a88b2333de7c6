"""Knative Eventing on the API emulator: install order and waits, the default Broker, re-run, disable."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from hybrid_knative import addon
from hybrid_knative.cli.main import cli
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError, DeadlineExceeded
from hybrid_knative.install.plan import plan
from hybrid_knative.kube.objects import ref_of
from hybrid_knative.platform.record import Record, record_path
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from tests.harness.emulator import FakeController
from tests.harness.knative import KnativeBehaviour
from tests.integration.conftest import Cluster

QUIET = Status(verbosity=-1)
EVENTING_STEPS = ["install_eventing_crds", "install_eventing_core", "install_in_memory_channel",
                  "install_mt_channel_broker", "create_default_broker"]


def test_plan_places_eventing_after_dns_and_before_verify_and_mark() -> None:
    names = [s.name for s in plan(Config())]
    assert names[names.index("configure_host_dns") + 1: names.index("configure_host_dns") + 6] == EVENTING_STEPS
    assert names[-2:] == ["verify_smoke_service", "mark_enabled"]
    assert not set(EVENTING_STEPS) & {s.name for s in plan(Config(eventing=False))}
    assert "verify_smoke_service" not in {s.name for s in plan(Config(verify=False))}


def test_render_leaves_out_tls_networking_and_post_install() -> None:
    _, rendered = addon.render(Config(), KubeVersion.parse("1.34"), QUIET)
    objs = [o for r in rendered for o in r.objects]
    assert not [o for o in objs if o["apiVersion"].startswith("cert-manager.io/")]  # tls-networking: cert-manager
    assert not [o for o in objs if o["kind"] == "Job"]  # eventing-post-install.yaml: nothing to migrate when fresh
    by_step = {r.step.name: r.objects for r in rendered}
    assert not [o for o in by_step["install_eventing_core"] if o["kind"] == "CustomResourceDefinition"]
    assert [o["metadata"]["name"] for o in by_step["install_in_memory_channel"]
            if o["kind"] == "CustomResourceDefinition"] == ["inmemorychannels.messaging.knative.dev"]
    pdbs = [o for o in by_step["install_eventing_core"] if o["kind"] == "PodDisruptionBudget"]
    assert pdbs and all(p["spec"] == {**p["spec"], "maxUnavailable": 1} and "minAvailable" not in p["spec"]
                        for p in pdbs)
    broker = by_step["create_default_broker"]
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in broker] == [
        ("Broker", "default", "default")]


def test_eventing_install_rerun_and_disable(cluster: Cluster) -> None:
    outcome = addon.enable(cluster.config(), QUIET)
    assert cluster.marker.is_file()
    for name in ("eventing-controller", "eventing-webhook", "imc-controller", "imc-dispatcher",
                 "mt-broker-controller", "mt-broker-ingress", "mt-broker-filter"):
        dep = cluster.server.get("apps/v1", "deployments", name, "knative-eventing")
        assert dep is not None, name
    pdb = cluster.server.get("policy/v1", "poddisruptionbudgets", "eventing-webhook", "knative-eventing")
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    broker = cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "default")
    assert broker is not None
    assert broker["status"]["address"]["url"].endswith("/default/default")
    # the wait saw the webhook endpoints before the broker was created (the webhook validates Brokers)
    paths = [r.path for r in cluster.server.requests]
    first_broker = next(i for i, p in enumerate(paths) if "/brokers/" in p)
    assert any("knative-eventing/endpointslices" in p for p in paths[:first_broker])
    assert outcome.smoke_url is None  # verify is off in this test
    record = Record.load(record_path(cluster.state_dir, outcome.kube.server, outcome.kube.context), server="")
    assert set(EVENTING_STEPS) <= {e.step for e in record.entries}
    assert [e.ref for e in record.entries if e.ref.kind == "Broker"] == [ref_of(broker)]

    # the status table: one row per component, with its version, the domain and the ingress address
    health = addon.health(cluster.config())
    assert health.healthy
    rows = {r.name: r for r in health.table}
    assert rows["knative-eventing"].version == "1.23.0" and rows["knative-eventing"].ready
    assert rows["knative-serving"].version == "1.23.0" and rows["net-kourier"].ready
    assert rows["broker default/default"].ready
    assert health.domain == "hk.internal"
    result = CliRunner().invoke(cli, ["status", *cluster.cli_args(install=False)])
    assert result.exit_code == 0, result.output
    assert re.search(r"knative-eventing +yes +1\.23\.0 +9/9 Deployments Available", result.output), result.output
    assert "domain: hk.internal" in result.output
    cluster.controller.never_ready.add("mt-broker-filter")
    result = CliRunner().invoke(cli, ["status", *cluster.cli_args(install=False)])
    assert result.exit_code == 3
    assert re.search(r"knative-eventing +no +1\.23\.0 +8/9 Deployments Available \(mt-broker-filter", result.output)
    cluster.controller.never_ready.discard("mt-broker-filter")

    cluster.server.reset_requests()
    again = addon.enable(cluster.config(), QUIET)
    assert cluster.server.writes() == [] and again.written == 0

    addon.disable(cluster.config(), QUIET)
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "default") is None
    assert cluster.server.list("apps/v1", "deployments", "knative-eventing") == []
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "brokers.eventing.knative.dev") is None
    default_ns = cluster.server.get("v1", "namespaces", "default")  # a system namespace: never applied, kept
    assert default_ns is not None and "deletionTimestamp" not in default_ns["metadata"]
    assert not default_ns["metadata"].get("managedFields")


def test_broker_in_a_new_namespace_is_created_and_removed(cluster: Cluster) -> None:
    cluster.server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "user-ns"}})
    addon.enable(cluster.config(broker_namespace="events"), QUIET)
    ns = cluster.server.get("v1", "namespaces", "events")
    assert ns is not None and ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hybrid-knative"
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "events") is not None
    addon.disable(cluster.config(broker_namespace="events"), QUIET)
    assert cluster.server.get("v1", "namespaces", "events") is None
    assert cluster.server.get("v1", "namespaces", "user-ns") is not None


def test_broker_in_an_existing_namespace_leaves_the_namespace_alone(cluster: Cluster) -> None:
    cluster.server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "team-a"}})
    addon.enable(cluster.config(broker_namespace="team-a", eventing=True), QUIET)
    addon.disable(cluster.config(broker_namespace="team-a"), QUIET)
    assert cluster.server.get("v1", "namespaces", "team-a") is not None
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "team-a") is None


def test_no_eventing_installs_none_of_it(cluster: Cluster) -> None:
    addon.enable(cluster.config(eventing=False), QUIET)
    assert cluster.marker.is_file()
    assert cluster.server.get("v1", "namespaces", "knative-eventing") is None
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "brokers.eventing.knative.dev") is None


def test_broker_never_ready_stops_before_marking_enabled(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(hooks=[KnativeBehaviour(broker_never_ready=True)]))
    with pytest.raises(DeadlineExceeded) as err:
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert "Broker default/default" in err.value.brief
    assert "DeploymentUnavailable" in (err.value.details or "")
    assert "describe broker default" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_eventing_webhook_never_ready_names_it(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(never_ready={"eventing-webhook"}))
    with pytest.raises(DeadlineExceeded) as err:
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert "Deployment knative-eventing/eventing-webhook" in err.value.brief
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "default") is None
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


@pytest.mark.parametrize("bad", ["Default", "-x", "a_b", "x" * 64, "", "ns\n"])
def test_bad_broker_namespace_is_refused(cluster: Cluster, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        cluster.config(broker_namespace=bad)
    assert "--broker-namespace" in err.value.brief
    assert cluster.server.writes() == []
