"""The verify step: a smoke KService must be Ready and answer through its URL from the host (a real
DNS server and a real HTTP gateway on 127.0.0.1) and from a pod (a Job) before enable marks enabled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybrid_knative import addon
from hybrid_knative.config import SnapPaths
from hybrid_knative.errors import DeadlineExceeded, PermanentError
from hybrid_knative.progress import Status
from hybrid_knative.smoke import parse_ctr_images, smoke_data
from hybrid_knative.system import marker, microk8s
from hybrid_knative.system.http import HostProbes, HttpAnswer
from tests.harness.emulator import FakeController, Store
from tests.harness.knative import KnativeBehaviour
from tests.harness.netfixtures import Gateway, ZoneResolver, dns_server, http_gateway, probes_for
from tests.harness.runner import RecordingRunner
from tests.integration.conftest import NODE_IP, Cluster
from tests.snap.fakes import Fakes, strict_wrappers

QUIET = Status(verbosity=-1)
HOST = "hello-default.hk.internal"
URL = f"http://{HOST}"
PINNED = smoke_data().digest
NODE_DIGEST = "sha256:" + "ab" * 32

# `microk8s ctr -n k8s.io images ls` as containerd 1.7/2.x prints it (columns separated by spaces)
_CTR_ROWS = [  # REF TYPE DIGEST SIZE PLATFORMS LABELS
    ("docker.io/library/busybox:1.28.4", "application/vnd.docker.distribution.manifest.list.v2+json", NODE_DIGEST,
     "709.7 KiB", "linux/386,linux/amd64,linux/arm/v5,linux/arm/v6,linux/arm/v7,linux/arm64/v8",
     "io.cri-containerd.image=managed"),
    (f"docker.io/library/busybox@{NODE_DIGEST}", "application/vnd.docker.distribution.manifest.list.v2+json",
     NODE_DIGEST, "709.7 KiB", "linux/386,linux/amd64,linux/arm/v5,linux/arm/v6,linux/arm/v7,linux/arm64/v8",
     "io.cri-containerd.image=managed"),
    ("registry.k8s.io/pause:3.10", "application/vnd.oci.image.index.v1+json",
     "sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a", "312.0 KiB",
     "linux/amd64,linux/arm64", "io.cri-containerd.image=managed,io.cri-containerd.pinned=pinned"),
]
# `microk8s ctr -n k8s.io images ls` as containerd prints it: a header, then space-padded columns
CTR_OUTPUT = "\n".join(
    f"{r[0]:<72} {r[1]:<57} {r[2]:<71} {r[3]:<9} {r[4]:<72} {r[5]}"
    for r in [("REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"), *_CTR_ROWS]) + "\n"


@pytest.fixture
def net() -> Iterator[tuple[str, ZoneResolver, int, Gateway]]:
    with dns_server("hk.internal") as (dns, resolver), http_gateway() as (port, gateway):
        gateway.routes[HOST] = (200, smoke_data().marker + "\n")
        yield dns, resolver, port, gateway


def smoke_jobs(cluster: Cluster) -> list[dict]:
    return [j for j in cluster.server.list("batch/v1", "jobs", "default")
            if j["metadata"]["labels"].get("app.kubernetes.io/component") == "smoke-probe"]


def test_smoke_service_answers_then_enabled(cluster: Cluster, net: tuple) -> None:
    dns, resolver, port, gateway = net
    outcome = addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes_for(dns, port))
    assert outcome.smoke_url == URL
    assert cluster.marker.is_file()
    ksvc = cluster.server.get("serving.knative.dev/v1", "services", "hello", "default")
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"docker.io/library/busybox@{PINNED}"  # by digest: no tag resolution
    assert container["ports"] == [{"containerPort": 8080}]
    assert '-p "$PORT"' in container["command"][-1]
    assert HOST in resolver.queries and gateway.seen == [HOST]
    [job] = smoke_jobs(cluster)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TARGET"] == URL and job["spec"]["ttlSecondsAfterFinished"] > 0
    assert "wget" in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]

    # re-run with default flags: nothing changed since the verified enable → no write at all, one LIST per
    # kind instead of a GET per object, no object read twice, and no probe (issue 13: 0 writes, ≤ 40 requests)
    cluster.server.reset_requests()
    again = addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes_for(dns, port))
    requests = list(cluster.server.requests)
    assert cluster.server.writes() == [] and again.written == 0
    assert len(requests) <= 40, len(requests)
    reads = [(r.method, r.path, r.query) for r in requests]
    assert sorted({x for x in reads if reads.count(x) > 1}) == []  # e.g. the kourier Service once, not 6x
    assert any(r.path == "/apis/apps/v1/deployments" for r in requests)  # the LIST that replaced the GETs
    assert smoke_jobs(cluster) == [job] and again.smoke_url == URL

    # --verify: the probes run again although nothing changed; the only write is a fresh pod-side probe
    cluster.server.reset_requests()
    addon.enable(cluster.config(verify=True, verify_always=True, eventing=False), QUIET, probes=probes_for(dns, port))
    writes = cluster.server.writes()
    assert len(writes) == 1 and "/namespaces/default/jobs/hk-smoke-probe-" in writes[0].path

    # something changed (a platform object deleted behind our back): it is re-applied and verified again
    cluster.server.delete_object("v1", "configmaps", "config-domain", "knative-serving")
    cluster.server.reset_requests()
    before = len(smoke_jobs(cluster))
    repaired = addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes_for(dns, port))
    paths = [w.path for w in cluster.server.writes()]
    assert any(p.endswith("/namespaces/knative-serving/configmaps/config-domain") for p in paths), paths
    assert repaired.written >= 2 and len(smoke_jobs(cluster)) == before + 1

    # --no-verify after a change leaves the record unverified: the next default run proves it again
    cluster.server.delete_object("v1", "configmaps", "config-domain", "knative-serving")
    addon.enable(cluster.config(verify=False, eventing=False), QUIET, probes=probes_for(dns, port))
    before = len(smoke_jobs(cluster))
    addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes_for(dns, port))
    assert len(smoke_jobs(cluster)) == before + 1

    addon.disable(cluster.config(eventing=False), QUIET)
    assert cluster.server.get("serving.knative.dev/v1", "services", "hello", "default") is None


def test_digest_from_the_nodes_containerd(cluster: Cluster, net: tuple, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dns, _, port, _ = net
    # MicroK8s's public `microk8s ctr`; its internal wrapper would fail without MicroK8s's environment
    fakes = Fakes(tmp_path / "fakes", microk8s={"channel": "1.35/stable"}, ctr_output=CTR_OUTPUT)
    monkeypatch.setenv("FAKE_STATE", str(fakes.state_file))
    monkeypatch.setenv(microk8s.ENV, fakes.microk8s)
    snap = tmp_path / "snap"
    strict_wrappers(snap)
    config = cluster.config(verify=True, eventing=False, snap=SnapPaths(snap=snap, snap_data=tmp_path / "data",
                                                                         snap_common=tmp_path / "common"))
    addon.enable(config, QUIET, probes=probes_for(dns, port))
    assert ["microk8s", "ctr", "-n", "k8s.io", "images", "ls"] in fakes.calls
    ksvc = cluster.server.get("serving.knative.dev/v1", "services", "hello", "default")
    assert ksvc["spec"]["template"]["spec"]["containers"][0]["image"] == f"docker.io/library/busybox@{NODE_DIGEST}"
    [job] = smoke_jobs(cluster)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith(NODE_DIGEST)


def test_parse_ctr_images() -> None:
    images = parse_ctr_images(CTR_OUTPUT)
    assert images["docker.io/library/busybox:1.28.4"] == NODE_DIGEST
    assert images["registry.k8s.io/pause:3.10"].startswith("sha256:ee65")
    assert parse_ctr_images("REF TYPE DIGEST SIZE PLATFORMS LABELS\n") == {}


def test_service_never_ready_points_to_doctor(make_cluster: Callable[..., Cluster], net: tuple) -> None:
    dns, _, port, gateway = net
    failing = {"hello": ("ContainerMissing", 'Unable to fetch image "docker.io/library/busybox:1.28.4": failed to '
                         "resolve image to digest: Get \"https://index.docker.io/v2/\": dial tcp: lookup "
                         "index.docker.io: no such host")}
    cluster = make_cluster(controller=FakeController(hooks=[KnativeBehaviour(failing=failing)]))
    with pytest.raises(DeadlineExceeded) as err:
        addon.enable(cluster.config(verify=True, eventing=False, wait_timeout=1.0), QUIET,
                     probes=probes_for(dns, port))
    assert "smoke service default/hello did not become Ready" in err.value.brief
    assert "RevisionMissing" in (err.value.details or "")
    assert "hybrid-knative doctor hello" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE and gateway.seen == []  # MicroK8s: disable runs


def test_host_gets_404_from_the_ingress(cluster: Cluster, net: tuple) -> None:
    dns, _, port, gateway = net
    gateway.routes.clear()  # Kourier has no route for the host: Envoy answers 404
    with pytest.raises(PermanentError) as err:
        addon.enable(cluster.config(verify=True, eventing=False, wait_timeout=1.0), QUIET,
                     probes=probes_for(dns, port))
    assert err.value.brief == f"the smoke service does not answer from this host: {URL}"
    assert "HTTP 404" in (err.value.details or "")
    assert "hybrid-knative doctor hello" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE and smoke_jobs(cluster) == []  # MicroK8s: disable runs


def test_host_name_does_not_resolve(cluster: Cluster) -> None:
    """systemd-resolved runs (so the split DNS was configured), yet the name does not resolve."""
    (cluster.host_root / "run/systemd/resolve").mkdir(parents=True)
    with dns_server("other.zone") as (dns, resolver), http_gateway() as (port, gateway), \
            pytest.raises(PermanentError) as err:
        addon.enable(cluster.config(verify=True, eventing=False, wait_timeout=1.0), QUIET,
                     probes=probes_for(dns, port), runner=RecordingRunner())
    assert "does not answer from this host" in err.value.brief
    assert f"{HOST} does not resolve from this host" in (err.value.details or "")
    assert HOST in resolver.queries and gateway.seen == []
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_pod_probe_fails(make_cluster: Callable[..., Cluster], net: tuple) -> None:
    dns, _, port, _ = net

    def fail_probe_jobs(store: Store) -> None:  # the Job's pod got no answer: wget exits 1, backoff reached
        for job in store.list("batch/v1", "jobs", "default"):
            if job["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "smoke-probe":
                store.set_status("batch/v1", "jobs", job["metadata"]["name"], "default", {"failed": 3, "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit"}]})

    cluster = make_cluster(controller=FakeController(hooks=[fail_probe_jobs]))
    with pytest.raises(PermanentError) as err:
        addon.enable(cluster.config(verify=True, eventing=False, wait_timeout=2.0), QUIET,
                     probes=probes_for(dns, port))
    assert err.value.brief == f"the smoke service does not answer from a pod: {URL}"
    assert "BackoffLimitExceeded" in (err.value.details or "")
    assert "doctor hello" in (err.value.resolution or "") and "logs job/hk-smoke-probe-" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_a_foreign_hello_service_is_not_taken_over(cluster: Cluster, net: tuple) -> None:
    dns, _, port, _ = net
    addon.enable(cluster.config(eventing=False), QUIET)  # serving CRDs in place, verify off
    cluster.server.put_object("serving.knative.dev/v1", "services", {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default", "labels": {"team": "a"}},
        "spec": {"template": {"spec": {"containers": [{"image": "example.org/hello:1"}]}}}})
    cluster.server.reset_requests()
    with pytest.raises(PermanentError) as err:
        addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes_for(dns, port))
    assert "is not hybrid-knative's smoke service" in err.value.brief
    assert "--no-verify" in (err.value.resolution or "")
    ksvc = cluster.server.get("serving.knative.dev/v1", "services", "hello", "default")
    assert ksvc["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/hello:1"


def test_host_without_split_dns_is_verified_through_the_ingress_address(cluster: Cluster, net: tuple) -> None:
    """A plain resolv.conf host (no systemd-resolved, no NetworkManager): the host cannot resolve the
    zone, so enable GETs the URL through the ingress address with the Host header, and finishes."""
    _dns, _resolver, port, gateway = net
    (cluster.host_root / "etc").mkdir(parents=True, exist_ok=True)
    (cluster.host_root / "etc/resolv.conf").write_text("nameserver 192.168.1.1\n")
    asked: list[str] = []

    def host_resolver(name: str) -> list[str]:
        asked.append(name)
        return []  # what getaddrinfo gives for *.hk.internal on such a host

    vias: list[str | None] = []

    @dataclasses.dataclass(frozen=True)
    class NodeProbes(HostProbes):
        """The node address (10.0.0.5) is not this test host's: its gateway stands in on 127.0.0.1."""

        def get(self, url: str, *, via: str | None = None) -> HttpAnswer:
            vias.append(via)
            return super().get(url, via="127.0.0.1" if via == NODE_IP else via)

    probes = NodeProbes(resolve=host_resolver, http_port=port, timeout=2.0)
    outcome = addon.enable(cluster.config(verify=True, eventing=False), QUIET, probes=probes)
    assert outcome.smoke_url == URL and cluster.marker.is_file()
    assert gateway.seen == [HOST] and asked == [HOST] and vias == [NODE_IP]
    assert not (cluster.host_root / "etc/systemd").exists()
