"""`doctor` on the emulator: each cause, built from the statuses and events the REAL controllers write
(Knative's reasons/messages, the Deployment and ReplicaSet controllers, the scheduler, the kubelet),
one healthy case, DNS checks against a real DNS server on 127.0.0.1, and the platform check."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative.cli.main import cli
from hybrid_knative.diagnose import doctor
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.system.http import HostProbes
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR
from tests.harness.emulator import FakeController
from tests.harness.netfixtures import dns_server, probes_for
from tests.integration.conftest import Cluster

SERVING = "serving.knative.dev/v1"
NS = "default"
REV = "hello-00001"
POD = "hello-00001-deployment-6d4b7c9d8-x7k2p"
RS = "hello-00001-deployment-6d4b7c9d8"
T = "2025-01-01T00:00:00Z"
WAITS = WaitPolicy(timeout=3.0, interval=0.001, max_interval=0.01)
NO_DNS = HostProbes(resolve=lambda name: [])


def cond(type_: str, status: str = "True", reason: str | None = None, message: str | None = None) -> dict:
    c: dict[str, Any] = {"type": type_, "status": status, "lastTransitionTime": T}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


@pytest.fixture
def serving(make_cluster: Callable[..., Cluster]) -> Iterator[tuple[Cluster, KubeApi]]:
    cluster = make_cluster(version="1.34.2", controller=FakeController())
    crds = yaml.safe_load_all((PACKAGE_VENDOR_DIR / "knative-serving/1.23.0/serving-crds.yaml").read_text())
    for crd in crds:
        if crd:
            cluster.server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    yield cluster, KubeApi.connect(cluster.kubeconfig)


def seed(cluster: Cluster, *, ksvc: list[dict], config: list[dict] | None = None, revision: list[dict] | None = None,
         route: list[dict] | None = None, url: str = "http://hello-default.hk.internal",
         image: str = "ghcr.io/acme/hello:v1", pods: list[dict] | None = None, events: list[dict] | None = None,
         deployment_progress: dict | None = None) -> None:
    """A KService and what Knative made of it; pods and events as the kubelet/scheduler report them."""
    put = cluster.server.put_object
    ready = all(c["status"] == "True" for c in ksvc)
    spec = {"template": {"spec": {"containers": [{"image": image}]}}}
    put(SERVING, "services", {"apiVersion": SERVING, "kind": "Service", "metadata": {"name": "hello", "namespace": NS},
                              "spec": spec, "status": {"observedGeneration": 1, "conditions": ksvc, "url": url,
                                                       "latestCreatedRevisionName": REV,
                                                       **({"latestReadyRevisionName": REV} if ready else {})}})
    put(SERVING, "configurations", {"apiVersion": SERVING, "kind": "Configuration",
                                    "metadata": {"name": "hello", "namespace": NS}, "spec": spec,
                                    "status": {"observedGeneration": 1, "latestCreatedRevisionName": REV,
                                               "conditions": config or [cond("Ready")]}})
    put(SERVING, "revisions", {"apiVersion": SERVING, "kind": "Revision", "metadata": {"name": REV, "namespace": NS},
                               "spec": spec["template"]["spec"],
                               "status": {"observedGeneration": 1, "conditions": revision or [cond("Ready")]}})
    put(SERVING, "routes", {"apiVersion": SERVING, "kind": "Route", "metadata": {"name": "hello", "namespace": NS},
                            "spec": {}, "status": {"observedGeneration": 1, "url": url,
                                                   "conditions": route or [cond("Ready")]}})
    if deployment_progress is not None:
        put("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": f"{REV}-deployment", "namespace": NS},
                                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": REV}},
                                                "template": {"metadata": {"labels": {"app": REV}}, "spec": {
                                                    "containers": [{"name": "user-container", "image": image}]}}}})
        cluster.controller.never_ready.add(f"{REV}-deployment")  # the Deployment controller reports the deadline
    for index, status in enumerate(pods or []):
        put("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": POD if index == 0 else f"{POD}{index}", "namespace": NS,
                                        "labels": {"serving.knative.dev/revision": REV,
                                                   "serving.knative.dev/service": "hello"}},
                           "spec": {"containers": [{"name": "user-container", "image": image}]}, "status": status})
    for index, event in enumerate(events or []):
        put("v1", "events", {"apiVersion": "v1", "kind": "Event",
                             "metadata": {"name": f"{event['involvedObject']['name']}.{index:x}", "namespace": NS},
                             "type": "Warning", "firstTimestamp": T, "lastTimestamp": T, "count": 1, **event})


def waiting(reason: str, message: str) -> dict:
    return {"phase": "Pending", "containerStatuses": [
        {"name": "user-container", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
         "state": {"waiting": {"reason": reason, "message": message}}}]}


def event(kind: str, name: str, reason: str, message: str, component: str) -> dict:
    return {"involvedObject": {"kind": kind, "name": name, "namespace": NS}, "reason": reason, "message": message,
            "source": {"component": component}}


NOT_READY = [cond("ConfigurationsReady", "False", "RevisionFailed", f'Revision "{REV}" failed.'),
             cond("Ready", "False", "RevisionMissing", 'Configuration "hello" does not have any ready Revision.'),
             cond("RoutesReady", "False", "RevisionMissing", 'Configuration "hello" does not have any ready Revision.')]


def diagnose(kube: KubeApi, probes: HostProbes = NO_DNS, *, pod_check: bool = False) -> doctor.Report:
    return doctor.diagnose_service(kube, "hello", NS, probes=probes, waits=WAITS, pod_check=pod_check)


def the_problem(report: doctor.Report) -> doctor.Finding:
    bad = [f for f in report.findings if not f.ok]
    assert len(bad) == 1, bad
    for text in (bad[0].cause, bad[0].evidence, bad[0].fix):
        assert text and "\n" not in text
    return bad[0]


def test_tag_to_digest(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    message = ('Unable to fetch image "localhost:32000/hello:latest": failed to resolve image to digest: '
               'Get "https://localhost:32000/v2/": dial tcp [::1]:32000: connect: connection refused')
    seed(cluster, ksvc=NOT_READY, image="localhost:32000/hello:latest",
         revision=[cond("ContainerHealthy", "False", "ContainerMissing", message),
                   cond("Ready", "False", "ContainerMissing", message),
                   cond("ResourcesAvailable", "False", "ContainerMissing", message)])
    f = the_problem(diagnose(kube))
    assert f.check == "tag-to-digest" and "localhost:32000/hello:latest" in f.cause
    assert "failed to resolve image to digest" in f.evidence
    assert "registries-skipping-tag-resolving" in f.fix and "localhost:32000,127.0.0.1:32000" in f.fix


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_image_pull(serving: tuple[Cluster, KubeApi], reason: str) -> None:
    cluster, kube = serving
    pull = ('Failed to pull image "ghcr.io/acme/hello:v1": rpc error: code = NotFound desc = failed to pull and '
            'unpack image "ghcr.io/acme/hello:v1": failed to resolve reference "ghcr.io/acme/hello:v1": not found')
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         pods=[waiting(reason, 'Back-off pulling image "ghcr.io/acme/hello:v1"' if reason == "ImagePullBackOff"
                       else pull)],
         events=[event("Pod", POD, "Failed", pull, "kubelet")])
    f = the_problem(diagnose(kube))
    assert f.check == "image-pull" and f"pod {POD}: {reason}" in f.evidence
    assert "imagePullSecret" in f.fix


def test_not_listening_on_port(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         pods=[{"phase": "Running", "containerStatuses": [
             {"name": "user-container", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
              "state": {"running": {"startedAt": T}}}]}],
         events=[queue_proxy_event("Readiness probe failed: HTTP probe failed with statuscode: 503")])
    f = the_problem(diagnose(kube))
    assert f.check == "port" and "$PORT" in f.cause and "statuscode: 503" in f.evidence


def queue_proxy_event(message: str) -> dict:
    """What kubelet reports when queue-proxy's readiness (which probes the user container) fails."""
    ev = event("Pod", POD, "Unhealthy", message, "kubelet")
    ev["involvedObject"]["fieldPath"] = "spec.containers{queue-proxy}"
    return ev


def test_a_kubelet_message_knative_never_produces_is_not_the_port_rule(serving: tuple[Cluster, KubeApi]) -> None:
    """Knative's containers have no kubelet TCP probe of their own: "connection refused" on queue-proxy
    (e.g. while it starts) is not evidence of a wrong $PORT."""
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         pods=[{"phase": "Running", "containerStatuses": [
             {"name": "user-container", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
              "state": {"running": {"startedAt": T}}}]}],
         events=[queue_proxy_event("Readiness probe failed: dial tcp 127.0.0.1:8012: connect: connection refused")])
    assert the_problem(diagnose(kube)).check != "port"


def test_crash_loop(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("ContainerHealthy", "False", "ExitCode1",
                                                 "Container failed with: Error: cannot open config.yaml"),
                                            cond("Ready", "False", "ExitCode1",
                                                 "Container failed with: Error: cannot open config.yaml")],
         pods=[waiting("CrashLoopBackOff", f"back-off 5m0s restarting failed container=user-container pod={POD}_"
                       "default(4b8f1c1e-0f39-4c1a-9d55-2b7b1a0d6c11)")],
         events=[event("Pod", POD, "BackOff", "Back-off restarting failed container user-container in pod "
                       f"{POD}_default(4b8f1c1e-0f39-4c1a-9d55-2b7b1a0d6c11)", "kubelet")])
    f = the_problem(diagnose(kube))
    assert f.check == "crash-loop" and "CrashLoopBackOff" in f.evidence and f"logs {POD}" in f.fix


def test_progress_deadline(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "False", "ProgressDeadlineExceeded",
                                                 "Initial scale was never achieved")],
         deployment_progress={})
    f = the_problem(diagnose(kube))
    assert f.check == "progress-deadline" and "ProgressDeadlineExceeded" in f.evidence
    assert "progress-deadline" in f.fix


def test_progress_deadline_seen_on_the_deployment(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")], deployment_progress={})
    f = the_problem(diagnose(kube))
    assert f.check == "progress-deadline" and f"Deployment {REV}-deployment" in f.evidence
    assert "has timed out progressing" in f.evidence


def test_unschedulable(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         pods=[{"phase": "Pending", "conditions": [cond("PodScheduled", "False", "Unschedulable",
                                                        "0/1 nodes are available: 1 Insufficient cpu.")]}],
         events=[event("Pod", POD, "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu. preemption: "
                       "0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                       "default-scheduler")])
    f = the_problem(diagnose(kube))
    assert f.check == "unschedulable" and "Insufficient cpu" in f.evidence and "--profile edge" in f.fix


def test_quota(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         events=[event("ReplicaSet", RS, "FailedCreate", f'Error creating: pods "{POD}" is forbidden: exceeded quota: '
                       "compute-quota, requested: requests.cpu=525m, used: requests.cpu=1500m, limited: "
                       "requests.cpu=2", "replicaset-controller")])
    f = the_problem(diagnose(kube))
    assert f.check == "quota" and "exceeded quota: compute-quota" in f.evidence and "resourcequota" in f.fix


def test_webhook(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    message = ('failed calling webhook "webhook.serving.knative.dev": failed to call webhook: Post '
               '"https://webhook.knative-serving.svc:443/defaulting?timeout=10s": no endpoints available for '
               'service "webhook"')
    seed(cluster, ksvc=[cond("ConfigurationsReady"), cond("Ready", "False", "RouteMissing", message),
                        cond("RoutesReady", "False", "RouteMissing", message)])
    f = the_problem(diagnose(kube))
    assert f.check == "webhook" and "no endpoints available" in f.evidence


def test_ingress_not_configured(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=[cond("ConfigurationsReady"),
                        cond("Ready", "Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."),
                        cond("RoutesReady", "Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled.")],
         route=[cond("AllTrafficAssigned"),
                cond("IngressReady", "Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled."),
                cond("Ready", "Unknown", "IngressNotConfigured", "Ingress has not yet been reconciled.")])
    f = the_problem(diagnose(kube))
    assert f.check == "ingress" and "IngressNotConfigured" in f.evidence
    assert "kourier.ingress.networking.knative.dev" in f.fix


def test_version_skew(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(version="1.33.4", controller=FakeController())
    cluster.server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "knative-serving", "labels": {"app.kubernetes.io/version": "1.23.0"}}})
    report = doctor.diagnose_platform(KubeApi.connect(cluster.kubeconfig))
    f = report.findings[0]  # first: the other findings follow from it
    assert not f.ok and not report.healthy
    assert f.check == "version-skew" and "needs Kubernetes ≥ 1.34" in f.cause and "1.33" in f.cause


def test_unknown_cause_still_shows_the_evidence(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")])
    f = the_problem(diagnose(kube))
    assert f.check == "unknown" and "RevisionMissing" in f.evidence


def test_missing_service(serving: tuple[Cluster, KubeApi]) -> None:
    _, kube = serving
    f = the_problem(diagnose(kube))
    assert f.check == "exists" and "kubectl get ksvc -A" in f.fix


def test_healthy_service_resolves_from_host_and_pod(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=[cond("ConfigurationsReady"), cond("Ready"), cond("RoutesReady")])
    with dns_server("hk.internal") as (dns, resolver):
        report = diagnose(kube, probes_for(dns, 80), pod_check=True)
    assert report.healthy, report.findings
    checks = {f.check: f for f in report.findings}
    assert checks["dns-host"].evidence == "answers 127.0.0.1"
    assert "hello-default.hk.internal" in resolver.queries
    [job] = [j for j in cluster.server.list("batch/v1", "jobs", NS)
             if j["metadata"]["labels"]["app.kubernetes.io/component"] == "doctor-dns"]
    spec = job["spec"]["template"]["spec"]["containers"][0]
    assert "nslookup" in spec["command"][-1] and {"name": "TARGET", "value": "hello-default.hk.internal"} in spec["env"]


def test_healthy_service_whose_name_does_not_resolve(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=[cond("ConfigurationsReady"), cond("Ready"), cond("RoutesReady")])
    with dns_server("elsewhere.test") as (dns, _):
        f = the_problem(diagnose(kube, probes_for(dns, 80)))
    assert f.check == "dns-host" and "does not resolve on this host" in f.cause


def test_dns_from_a_pod_fails(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController())
    crds = yaml.safe_load_all((PACKAGE_VENDOR_DIR / "knative-serving/1.23.0/serving-crds.yaml").read_text())
    for crd in crds:
        if crd:
            cluster.server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    seed(cluster, ksvc=[cond("ConfigurationsReady"), cond("Ready"), cond("RoutesReady")])

    def nslookup_fails(store: Any) -> None:
        for job in store.list("batch/v1", "jobs", NS):
            store.set_status("batch/v1", "jobs", job["metadata"]["name"], NS, {"failed": 3, "conditions": [
                cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]})

    cluster.controller.hooks.append(nslookup_fails)
    with dns_server("hk.internal") as (dns, _):
        f = the_problem(diagnose(KubeApi.connect(cluster.kubeconfig), probes_for(dns, 80), pod_check=True))
    assert f.check == "dns-pod" and "BackoffLimitExceeded" in f.evidence and "coredns" in f.fix


def test_cluster_local_url_means_no_domain(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, kube = serving
    seed(cluster, ksvc=[cond("ConfigurationsReady"), cond("Ready"), cond("RoutesReady")],
         url="http://hello.default.svc.cluster.local")
    f = the_problem(diagnose(kube))
    assert f.check == "domain" and "--domain-mode" in f.fix


def test_platform_after_enable_then_broken(cluster: Cluster) -> None:
    from hybrid_knative import addon
    from hybrid_knative.progress import Status

    addon.enable(cluster.config(eventing=False), Status(verbosity=-1))
    kube = KubeApi.connect(cluster.kubeconfig)
    report = doctor.diagnose_platform(kube)
    assert report.healthy, [f for f in report.findings if not f.ok]
    assert {"knative-serving", "kourier-system", "ingress-class", "domain"} <= {f.check for f in report.findings}
    cluster.server.put_object("v1", "configmaps", {
        **cluster.server.get("v1", "configmaps", "config-network", "knative-serving"),
        "data": {"ingress-class": "istio.ingress.networking.knative.dev"}})
    f = the_problem(doctor.diagnose_platform(kube))
    assert f.check == "ingress-class" and "istio" in f.evidence


def test_cli_prints_cause_evidence_fix_and_exits_3(serving: tuple[Cluster, KubeApi]) -> None:
    cluster, _ = serving
    seed(cluster, ksvc=NOT_READY, revision=[cond("Ready", "Unknown", "Deploying")],
         pods=[waiting("ImagePullBackOff", 'Back-off pulling image "ghcr.io/acme/hello:v1"')])
    result = CliRunner().invoke(cli, ["doctor", "hello", "-n", NS, "--no-pod-check",
                                      *cluster.cli_args(install=False)])
    assert result.exit_code == 3, result.output
    assert re.search(r"✗ image-pull\n  cause: .+\n  evidence: .+ImagePullBackOff.+\n  fix: .+", result.output)


@pytest.mark.parametrize("args", [["Hello"], ["hello", "-n", "Bad_NS"], ["hello", "--dns-server", "nope"]])
def test_cli_refuses_bad_input(serving: tuple[Cluster, KubeApi], args: list[str]) -> None:
    cluster, _ = serving
    cluster.server.reset_requests()
    result = CliRunner().invoke(cli, ["doctor", *args, *cluster.cli_args(install=False)])
    assert result.exit_code == 2, result.output
    assert cluster.server.requests == []
