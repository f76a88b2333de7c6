"""Overlapped installs (issue 13): Eventing beside Serving + Kourier + DNS, against the API emulator with
readiness delays so that the two branches really interleave; the same record as an install in order; a
failure in one branch stops the other and leaves a record that disable takes back completely."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from hybrid_knative import addon
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import DeadlineExceeded
from hybrid_knative.install.run import _phases, load_record
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ref_of
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from tests.harness.emulator import FakeController
from tests.integration.conftest import STOCK_COREFILE, Cluster
from tests.integration.test_enable_flow import rendered_objects, stored

QUIET = Status(verbosity=-1)
SERVING_SIDE = ("knative-serving", "net-kourier", "dns")
# Deployments become Available only after a few reads each (waits poll, sleep, poll again)
DELAYS = {"activator": 4, "controller": 3, "net-kourier-controller": 4, "3scale-kourier-gateway": 3,
          "eventing-controller": 4, "eventing-webhook": 3, "imc-controller": 3, "mt-broker-controller": 3}


def delayed(**extra: object) -> FakeController:
    return FakeController(ready_after_reads=dict(DELAYS), **extra)  # type: ignore[arg-type]


def record_of(cluster: Cluster) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    config = cluster.config()
    record = load_record(config, KubeApi.connect(config.effective_kubeconfig))
    return ([(str(e.ref), e.step, e.component, e.sha256) for e in record.entries], [u.key for u in record.undos])


def test_phases_split_the_independent_components_and_keep_install_order(cluster: Cluster) -> None:
    _, rendered = addon.render(cluster.config(), KubeVersion.parse("1.34.2"), QUIET)
    names = [r.step.name for r in rendered]
    assert _phases(rendered, overlap=False) == [[rendered]]
    phases = _phases(rendered, overlap=True)
    assert [len(p) for p in phases] == [2, 1]  # the two branches side by side, then the marker
    serving, eventing = phases[0]
    assert list(dict.fromkeys(r.step.component for r in serving)) == list(SERVING_SIDE)
    assert {r.step.component for r in eventing} == {"knative-eventing"}
    for branch in (serving, eventing):  # install order within a branch
        assert [r.step.name for r in branch] == [n for n in names if n in {r.step.name for r in branch}]
    assert sorted(r.step.name for p in phases for b in p for r in b) == sorted(names)  # every step once
    assert [r.step.name for r in phases[1][0]] == ["mark_enabled"]
    # without eventing there is nothing to overlap
    _, alone = addon.render(cluster.config(eventing=False), KubeVersion.parse("1.34.2"), QUIET)
    assert _phases(alone, overlap=True) == [[alone]]


def test_overlapped_enable_records_exactly_what_an_install_in_order_records(
        make_cluster: Callable[..., Cluster]) -> None:
    overlapped, in_order = make_cluster(controller=delayed()), make_cluster(controller=delayed())
    out = io.StringIO()
    addon.enable(overlapped.config(), Status(stream=out, verbosity=0, tty=False))
    addon.enable(in_order.config(overlap=False), QUIET)
    # the branches really ran side by side: an Eventing write came between two Serving-side writes
    paths = [r.path for r in overlapped.server.writes() if "/namespaces/hybrid-knative-system" not in r.path]
    eventing = [i for i, p in enumerate(paths) if "eventing" in p]
    kourier = [i for i, p in enumerate(paths) if "kourier" in p]
    assert eventing and kourier and eventing[0] < kourier[-1], paths
    # … and recorded the same objects (same checksums, steps, components) in the same order, same undo entries
    assert record_of(overlapped) == record_of(in_order)
    assert marker.read(overlapped.marker) == marker.read(in_order.marker) == marker.UNVERIFIED  # verify off
    lines = out.getvalue().splitlines()
    assert "✓ [knative-eventing] Install the in-memory channel" in lines
    assert any(line.startswith("✓ [net-kourier] ") for line in lines)
    assert "✓ Install side by side: knative-serving, net-kourier, dns | knative-eventing" in lines
    assert lines[-1] == "✓ Mark hybrid-knative enabled"

    # a re-run overlapped: nothing written, few requests (the branches share one read memory), record unchanged
    overlapped.server.reset_requests()
    again = addon.enable(overlapped.config(), QUIET)
    assert again.written == 0 and overlapped.server.writes() == []
    assert len(overlapped.server.requests) <= 40, len(overlapped.server.requests)
    assert again.kube is not None and again.kube.counters.reads == len(overlapped.server.requests)
    assert record_of(overlapped) == record_of(in_order)


def test_a_failure_in_the_eventing_branch_stops_and_disable_takes_everything_back(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=delayed(never_ready={"eventing-webhook"}))
    with pytest.raises(DeadlineExceeded) as err:
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert "Deployment knative-eventing/eventing-webhook" in err.value.brief
    assert marker.read(cluster.marker) == marker.INCOMPLETE
    entries, _ = record_of(cluster)
    components = {component for _, _, component, _ in entries}
    assert "knative-eventing" in components and "knative-serving" in components
    # what was applied is recorded (the half-done eventing core too); nothing of the broker step ran
    assert any("eventing-webhook" in ref for ref, _, _, _ in entries)
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "default") is None
    # the record in the cluster lists every managed object that exists (nothing applied unrecorded)
    recorded = {ref for ref, _, _, _ in entries}
    for obj in rendered_objects(cluster):
        if stored(cluster, obj) is not None:
            assert str(ref_of(obj)) in recorded, ref_of(obj)

    addon.disable(cluster.config(), QUIET)
    assert not [str(ref_of(o)) for o in rendered_objects(cluster) if stored(cluster, o) is not None]
    core = cluster.server.get("v1", "configmaps", "coredns", "kube-system")
    assert core is not None and core["data"]["Corefile"] == STOCK_COREFILE
    assert cluster.server.get("v1", "configmaps", "hybrid-knative-record", "hybrid-knative-system") is None
    assert not cluster.marker.exists()


def test_a_failed_overlapped_enable_is_finished_by_a_re_run(make_cluster: Callable[..., Cluster]) -> None:
    controller = delayed(never_ready={"net-kourier-controller"})
    cluster = make_cluster(controller=controller)
    with pytest.raises(DeadlineExceeded) as err:
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert "net-kourier-controller" in err.value.brief
    controller.never_ready.clear()
    addon.enable(cluster.config(), QUIET)
    assert marker.read(cluster.marker) == marker.UNVERIFIED  # verify off in these tests
    assert cluster.server.get("eventing.knative.dev/v1", "brokers", "default", "default") is not None
    assert not [str(ref_of(o)) for o in rendered_objects(cluster) if stored(cluster, o) is None]
    entries, _ = record_of(cluster)
    fresh = make_cluster(controller=delayed())
    addon.enable(fresh.config(overlap=False), QUIET)
    assert sorted(entries) == sorted(record_of(fresh)[0])  # every object recorded once, as a fresh install
