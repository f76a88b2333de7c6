"""Real parts for the clone tests: two API emulators with Knative's CRDs, two CNCF distribution registries
(the target one behind htpasswd basic auth, bcrypt hashes), tiny images, and the target's "ingress": a
local HTTP server on 127.0.0.1 that answers by Host header for every Ready KService of the target."""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from hybrid_knative.upstream import PACKAGE_VENDOR_DIR
from tests.airgap.tinyimages import write_image
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.knative import BROKER_DEPLOYMENTS, KnativeBehaviour, with_knative

SERVING = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"
KNATIVE = "1.23.0"
USER, PASSWORD = "clone", "s3cret-pass"
PLATFORM = {"app.kubernetes.io/managed-by": "hybrid-knative", "hybrid-knative.dev/component": "knative-eventing"}


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt install skopeo docker-registry)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crds(release: str = KNATIVE) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_crds(release)))


# The CRDs the clone touches (seeding all of them only slows the emulator's controller down)
SEEDED_CRDS = frozenset({"services.serving.knative.dev", "configurations.serving.knative.dev",
                         "revisions.serving.knative.dev", "routes.serving.knative.dev",
                         "domainmappings.serving.knative.dev", "brokers.eventing.knative.dev",
                         "triggers.eventing.knative.dev", "pingsources.sources.knative.dev",
                         "containersources.sources.knative.dev", "sinkbindings.sources.knative.dev",
                         "apiserversources.sources.knative.dev"})


@functools.cache
def _crds(release: str) -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for comp, name in (("knative-serving", "serving-crds.yaml"), ("knative-eventing", "eventing-crds.yaml")):
        text = (PACKAGE_VENDOR_DIR / comp / release / name).read_text(encoding="utf-8")
        docs += [d for d in yaml.safe_load_all(text)
                 if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    return tuple(docs)


def seed_knative(server: ApiServer, *, domain: str) -> None:
    """A cluster that already runs Knative 1.23 (CRDs, namespaces, config-domain, broker deployments)."""
    for crd in crds():
        if crd["metadata"]["name"] not in SEEDED_CRDS:
            continue
        server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    for ns in ("knative-serving", "knative-eventing", "kourier-system"):
        server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {**PLATFORM, "app.kubernetes.io/version": KNATIVE}}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "config-domain", "namespace": "knative-serving", "labels": PLATFORM},
        "data": {domain: "", "_example": "docs"}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "config-network", "namespace": "knative-serving", "labels": PLATFORM},
        "data": {"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"}})
    for name in BROKER_DEPLOYMENTS:
        server.put_object("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": name, "namespace": "knative-eventing", "labels": PLATFORM}, "spec": {"replicas": 1}})
    server.reconcile()


KAFKA_SOURCE_CRD = Path(__file__).resolve().parents[1] / "fixtures" / "crds" / "kafkasources.sources.knative.dev.yaml"


@functools.cache
def _kafka_source_crd() -> dict[str, Any]:
    crd = yaml.safe_load(KAFKA_SOURCE_CRD.read_text(encoding="utf-8"))
    assert crd["kind"] == "CustomResourceDefinition"
    return dict(crd)


def kafka_source_crd() -> dict[str, Any]:
    """The project's own KafkaSource CRD (written from Knative's API reference: not in the upstream mirror)."""
    return copy.deepcopy(_kafka_source_crd())


def seed_kafka(server: ApiServer) -> None:
    """eventing-kafka's source on a cluster: the KafkaSource CRD it serves."""
    server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", kafka_source_crd())
    server.reconcile()


def seed_kserve(cluster: Cluster, *, domain: str) -> None:
    """KServe as `enable --with ml` installs it (CRDs, controller with our webhook PKI, the CPU runtimes) —
    without the local model store: a cloud has its own object storage."""
    from hybrid_knative.kube.api import KubeApi
    from hybrid_knative.kube.objects import sort_for_apply
    from hybrid_knative.ml import cluster as ml_cluster
    from hybrid_knative.ml import kserve, pki
    from hybrid_knative.upstream import UpstreamStore
    from tests.ml.conftest import slim_crd

    kube = KubeApi.connect(cluster.kubeconfig, cluster.context)
    up = UpstreamStore()
    labels = ml_cluster.labels_for("kserve")
    crds_ = kserve.render_crds(up, labels)
    kube.register_crds(crds_)
    for obj in crds_:
        kube.apply(slim_crd(obj))  # the emulator copies CRDs on every request; the KServe fake validates fully
    objs = [*kserve.render_controller(up, labels, pki.issue(pki.KSERVE), domain=domain),
            *kserve.render_runtimes(up, labels)]
    for obj in sort_for_apply(objs):
        kube.apply(obj)
    cluster.server.reconcile()


def load_balancer(ip: str) -> Any:
    """A cloud's load-balancer controller: every LoadBalancer Service gets ``ip``."""

    def hook(store: Any) -> None:
        for svc in store.list("v1", "services"):
            if (svc.get("spec") or {}).get("type") == "LoadBalancer" and not (svc.get("status") or {}).get(
                    "loadBalancer", {}).get("ingress"):
                store.set_status("v1", "services", svc["metadata"]["name"], svc["metadata"]["namespace"],
                                 {"loadBalancer": {"ingress": [{"ip": ip}]}})

    return hook


@dataclasses.dataclass
class Cluster:
    server: ApiServer
    behaviour: KnativeBehaviour
    kubeconfig: Path
    context: str


def start_cluster(root: Path, context: str, *, version: str = "1.34.2", lb_ip: str | None = None,
                  kserve: bool = False) -> Cluster:
    behaviour = KnativeBehaviour()
    controller = with_knative(FakeController(), behaviour)
    if lb_ip:
        controller.hooks.append(load_balancer(lb_ip))
    if kserve:
        from tests.harness.kserve import KServeBehaviour

        controller.hooks.append(KServeBehaviour())
    server = ApiServer(version=version, controller=controller).__enter__()
    kubeconfig = server.write_kubeconfig(root / f"{context}.kubeconfig", context=context)
    server.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{context}-node"},
                                      "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}})
    server.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "kube-dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.152.183.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}]}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": ".:53 {\n    forward . /etc/resolv.conf\n}\n"}})
    return Cluster(server, behaviour, kubeconfig, context)


# --- registries ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Registry:
    host: str
    root: Path
    proc: subprocess.Popen  # type: ignore[type-arg]
    authfile: Path | None = None

    def blob_bytes(self) -> int:
        blobs = self.root / "data" / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.exists() else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_registry(root: Path, *, auth: bool = False) -> Registry:
    need("docker-registry", "skopeo")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"version": 0.1, "log": {"level": "error"},
              "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
              "http": {"addr": f"127.0.0.1:{port}"}}
    authfile = None
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
        (root / "htpasswd").write_text(f"{USER}:{hashed}\n")
        config["auth"] = {"htpasswd": {"realm": "clone-test", "path": str(root / "htpasswd")}}
        authfile = root / "auth.json"
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        authfile.write_text(json.dumps({"auths": {f"127.0.0.1:{port}": {"auth": token}}}))
        authfile.chmod(0o600)
    (root / "registry.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "registry.yml")], stdout=subprocess.DEVNULL,
                            stderr=(root / "log").open("wb"))
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.025)
    else:
        proc.terminate()
        raise RuntimeError("docker-registry did not start")
    return Registry(f"127.0.0.1:{port}", root, proc, authfile)


def push(layout: Path, registry: Registry, name: str, tag: str, payload: str) -> str:
    """Write a tiny two-arch image (shared base layer) and push it; returns its index digest."""
    ref = f"{name}:{tag}"
    digest = write_image(layout, ref, payload=payload)
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{layout}:{ref}", f"docker://{registry.host}/{ref}"], check=True, timeout=60)
    return digest


def manifest_digest(reference: str, authfile: Path | None) -> str | None:
    argv = ["skopeo", "inspect", "--raw", "--tls-verify=false", *(["--authfile", str(authfile)] if authfile else []),
            f"docker://{reference}"]
    proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    import hashlib

    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


# --- the target's ingress --------------------------------------------------------------------------

@dataclasses.dataclass
class Ingress:
    port: int
    hits: list[str]


def ingress(target: ApiServer) -> Iterator[Ingress]:
    """Answers like Kourier: a Ready KService whose status.url host is the Host header → 200, else 404."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0]
            hits.append(host)
            for ksvc in target.list(SERVING, "services"):
                status = ksvc.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
                if ready and urllib.parse.urlsplit(str(status.get("url", ""))).hostname == host:
                    image = ksvc["spec"]["template"]["spec"]["containers"][0]["image"]
                    body = f"hello from {ksvc['metadata']['namespace']}/{ksvc['metadata']['name']} ({image})\n"
                    self._send(200, body)
                    return
            self._send(404, "no such service\n")

        def _send(self, code: int, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Ingress(server.server_address[1], hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
