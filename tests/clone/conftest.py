"""A local setup to clone: a source cluster running Knative with a user's shop (services, broker, triggers,
sources, a domain mapping, config, secrets, RBAC) whose images live in a local registry, and a target."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.image_registry import ImageRegistry
from hybrid_knative.system.runner import Runner
from tests.clone.parts import (
    EVENTING,
    PLATFORM,
    SERVING,
    Cluster,
    Ingress,
    Registry,
    crds,
    ingress,
    kafka_source_crd,
    push,
    seed_kafka,
    seed_knative,
    seed_kserve,
    start_cluster,
    start_registry,
)
from tests.harness.validation import ManifestValidator

pytestmark = pytest.mark.integration
SOURCE_ZONE = "hk.internal"
TARGET_DOMAIN = "fns.test"


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def ksvc(name: str, namespace: str, image: str, **spec: Any) -> dict[str, Any]:
    template = spec.pop("template_meta", None)
    env = spec.pop("env", [])
    container: dict[str, Any] = {"image": image, "ports": [{"containerPort": 8080}]}
    if env:
        container["env"] = env
    pod: dict[str, Any] = {"containers": [container]}
    if spec.pop("pull_secret", None):
        pod["imagePullSecrets"] = [{"name": "regcred"}]
    if spec.pop("service_account", None):
        pod["serviceAccountName"] = "runner"
    tmpl: dict[str, Any] = {"spec": pod}
    if template:
        tmpl["metadata"] = template
    labels = spec.pop("labels", {})
    return {"apiVersion": SERVING, "kind": "Service",
            "metadata": _meta(name, namespace, labels=labels, annotations={
                "serving.knative.dev/creator": "admin", "serving.knative.dev/lastModifier": "admin"}),
            "spec": {"template": tmpl, **spec}}


@dataclasses.dataclass
class World:
    source: Cluster
    target: Cluster
    src_registry: Registry
    dst_registry: Registry
    ingress: Ingress
    layout: Path
    digests: dict[str, str]  # image name → digest that runs
    tmp: Path

    @property
    def registry(self) -> str:
        return f"{self.dst_registry.host}/acme/fns"

    def kubes(self) -> tuple[KubeApi, KubeApi]:
        return (KubeApi.connect(self.source.kubeconfig, self.source.context),
                KubeApi.connect(self.target.kubeconfig, self.target.context))

    def skopeo(self) -> ImageRegistry:
        return ImageRegistry(Runner(), authfile=self.dst_registry.authfile)

    def probes(self) -> HostProbes:
        return HostProbes(resolve=lambda _h: ["127.0.0.1"], http_port=self.ingress.port, timeout=5)

    def status(self) -> Status:
        return Status(verbosity=-1)


@functools.cache
def _validator() -> ManifestValidator:
    return ManifestValidator("1.34", crds())


@functools.cache
def _kafka_validator() -> ManifestValidator:
    return ManifestValidator("1.34", [kafka_source_crd()])


def _validator_for(obj: dict[str, Any]) -> ManifestValidator:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group == "serving.kserve.io":
        from tests.harness.kserve import kserve_validator

        return kserve_validator("1.34")
    if obj.get("kind") == "KafkaSource":
        return _kafka_validator()
    return _validator()


def validating(kube: KubeApi, applied: list[dict[str, Any]]) -> KubeApi:
    """Every object applied to the target is first validated strictly (the API server's schema checks)."""
    original = kube.apply

    def apply(obj: dict[str, Any]) -> None:
        errors = _validator_for(obj).errors(obj)
        assert errors == [], f"invalid object sent to the target: {errors}"
        applied.append(obj)
        original(obj)

    kube.apply = apply  # type: ignore[method-assign]
    return kube


def seed_shop(world_source: Cluster, registry: Registry, layout: Path) -> dict[str, str]:
    s = world_source.server
    reg = registry.host
    digests = {"hello": push(layout, registry, "shop/hello", "1", "hello v1"),
               "orders": push(layout, registry, "shop/orders", "2", "orders v2"),
               "ticker": push(layout, registry, "shop/ticker", "1", "ticker")}
    put = s.put_object
    put("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("shop", labels={"team": "a"})})
    put("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("hybrid-knative-smoke",
                                                                                         labels=PLATFORM)})
    put("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("settings", "shop"),
                             "data": {"orders": f"http://orders-shop.{SOURCE_ZONE}", "mode": "fast"}})
    put("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("kube-root-ca.crt", "shop"),
                             "data": {"ca.crt": "x"}})
    put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta("db", "shop"),
                          "data": {"password": "aHVudGVyMg=="}})
    put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                          "metadata": _meta("regcred", "shop"),
                          "data": {".dockerconfigjson": "eyJhdXRocyI6IHt9fQ=="}})
    put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                          "metadata": _meta("runner-token", "shop", annotations={
                              "kubernetes.io/service-account.name": "runner"}), "data": {"token": "dG9r"}})
    put("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": _meta(
        "route-hello-tls", "shop", labels={"networking.internal.knative.dev/certificate-uid": "1234"},
        ownerReferences=[{"apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "Certificate",
                          "name": "route-hello", "uid": "1234"}]), "data": {"tls.crt": "eA==", "tls.key": "eA=="}})
    put("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("runner", "shop"),
                                  "secrets": [{"name": "runner-token"}], "imagePullSecrets": [{"name": "regcred"}]})
    put("rbac.authorization.k8s.io/v1", "roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta("reader", "shop"),
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    put("rbac.authorization.k8s.io/v1", "rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta("runner-reads", "shop"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "shop"}]})
    put(EVENTING, "brokers", {"apiVersion": EVENTING, "kind": "Broker", "metadata": _meta(
        "default", "shop", annotations={"eventing.knative.dev/broker.class": "MTChannelBasedBroker",
                                        "eventing.knative.dev/creator": "admin"}),
        "spec": {"delivery": {"retry": 3}}})
    put(EVENTING, "brokers", {"apiVersion": EVENTING, "kind": "Broker", "metadata": _meta(
        "default", "default", labels=PLATFORM)})
    put(SERVING, "services", ksvc("hello", "shop", f"{reg}/shop/hello:1", template_meta={"name": "hello-v1"},
                                  traffic=[{"revisionName": "hello-v1", "percent": 100}],
                                  env=[{"name": "ORDERS", "value": f"http://orders-shop.{SOURCE_ZONE}/api"},
                                       {"name": "MODE", "value": "fast"}],
                                  pull_secret=True, service_account=True, labels={"app": "shop"}))
    put(SERVING, "services", ksvc("orders", "shop", f"{reg}/shop/orders:2",
                                  traffic=[{"revisionName": "orders-00001", "percent": 100, "tag": "stable"}],
                                  labels={"app": "shop"}))
    put(SERVING, "services", ksvc("smoke", "hybrid-knative-smoke", f"{reg}/shop/hello:1",
                                  labels=PLATFORM))
    put(EVENTING, "triggers", {"apiVersion": EVENTING, "kind": "Trigger", "metadata": _meta("new-order", "shop"),
                               "spec": {"broker": "default", "filter": {"attributes": {"type": "shop.order"}},
                                        "subscriber": {"ref": {"apiVersion": SERVING, "kind": "Service",
                                                               "name": "orders"}}}})
    put(EVENTING, "triggers", {"apiVersion": EVENTING, "kind": "Trigger", "metadata": _meta("greet", "shop"),
                               "spec": {"broker": "default", "subscriber": {
                                   "uri": "http://hello.shop.svc.cluster.local/greet"}}})
    put("serving.knative.dev/v1beta1", "domainmappings", {
        "apiVersion": "serving.knative.dev/v1beta1", "kind": "DomainMapping",
        "metadata": _meta(f"api.{SOURCE_ZONE}", "shop"),
        "spec": {"ref": {"apiVersion": SERVING, "kind": "Service", "name": "hello"}}})
    put("sources.knative.dev/v1", "pingsources", {
        "apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": _meta("tick", "shop"),
        "spec": {"schedule": "*/5 * * * *", "data": "{}", "sink": {"ref": {
            "apiVersion": EVENTING, "kind": "Broker", "name": "default"}}}})
    put("sources.knative.dev/v1", "containersources", {
        "apiVersion": "sources.knative.dev/v1", "kind": "ContainerSource", "metadata": _meta("ticker", "shop"),
        "spec": {"template": {"spec": {"containers": [{"name": "ticker", "image": f"{reg}/shop/ticker:1"}]}},
                 "sink": {"uri": f"http://hello-shop.{SOURCE_ZONE}"}}})
    s.reconcile()
    # Knative resolved the tags to digests when the revisions were made (what the nodes pulled)
    for name in ("hello", "orders"):
        rev = f"{name}-00001"
        live = s.get(SERVING, "revisions", rev, "shop")
        assert live is not None
        s.set_status(SERVING, "revisions", rev, "shop", {
            **live["status"], "containerStatuses": [{"name": "user-container",
                                                     "imageDigest": f"{reg}/shop/{name}@{digests[name]}"}]})
    return digests


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    started: list[Any] = []

    def factory(*, target_knative: bool = True, target_version: str = "1.34.2", kserve: bool = False,
                kafka: bool = False) -> World:
        source = start_cluster(tmp_path, "local")
        started.append(source.server)
        target = start_cluster(tmp_path, "cloud", version=target_version, lb_ip="10.0.0.99", kserve=kserve)
        started.append(target.server)
        seed_knative(source.server, domain=SOURCE_ZONE)
        if target_knative:
            seed_knative(target.server, domain=TARGET_DOMAIN)
        if kserve:
            seed_kserve(source, domain=SOURCE_ZONE)
            seed_kserve(target, domain=TARGET_DOMAIN)
        if kafka:
            seed_kafka(source.server)
            seed_kafka(target.server)
        src = start_registry(tmp_path / "src-registry")
        started.append(src)
        dst = start_registry(tmp_path / "dst-registry", auth=True)
        started.append(dst)
        gen = ingress(target.server)
        ing = next(gen)
        started.append(gen)
        layout = tmp_path / "layout"
        digests = seed_shop(source, src, layout)
        source.server.reset_requests()
        target.server.reset_requests()
        return World(source, target, src, dst, ing, layout, digests, tmp_path)

    yield factory
    for item in reversed(started):
        if isinstance(item, Registry):
            item.stop()
        elif isinstance(item, Iterator):
            for _ in item:
                pass
        else:
            item.__exit__(None, None, None)


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
