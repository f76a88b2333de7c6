"""Real parts for the function workflow: buildah (vfs, chroot), Debian's docker-registry on 127.0.0.1, skopeo,
base images made offline from this host's own python3 and node binaries, and the API emulator with Knative's
CRDs (from the vendored release files) plus Knative's controllers (tests/harness/knative.py)."""

from __future__ import annotations

import dataclasses
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.system.buildah import Buildah
from hybrid_knative.system.runner import Runner
from tests.airgap.conftest import Registry, free_port, start_registry
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.knative import with_knative
from tests.harness.validation import ManifestValidator

VENDOR = Path(__file__).resolve().parents[2] / "src" / "hybrid_knative" / "_vendor"
# Our own KafkaSource CRD, written from Knative's API reference (the upstream one is not in the mirror).
KAFKA_SOURCE_CRD = Path(__file__).resolve().parents[1] / "fixtures" / "crds" / "kafkasources.sources.knative.dev.yaml"
PYTHON_BASE = "library/python:3.12-slim"
NODE_BASE = "library/node:22-slim"


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt install buildah skopeo docker-registry)")


def knative_crds() -> list[dict[str, Any]]:
    crds = []
    for rel in ("knative-serving/1.23.0/serving-crds.yaml", "knative-eventing/1.23.0/eventing-crds.yaml"):
        path = VENDOR / rel
        if not path.is_file():
            pytest.skip(f"{path} is not vendored (run `make vendor MIRROR=../shared/upstream`)")
        crds += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    return crds


def kafka_source_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(KAFKA_SOURCE_CRD.read_text())
    return crd


@pytest.fixture(scope="session")
def validator() -> ManifestValidator:
    return ManifestValidator("1.34", [*knative_crds(), kafka_source_crd()])


# --- the cluster (API emulator) ---------------------------------------------------------------------

@dataclasses.dataclass
class DevCluster:
    server: ApiServer
    kubeconfig: Path
    ingress_port: int

    def kube(self) -> KubeApi:
        return KubeApi.connect(self.kubeconfig)

    def objects(self, plural: str, api_version: str, namespace: str = "default") -> list[dict[str, Any]]:
        return self.server.list(api_version, plural, namespace)


def seed(server: ApiServer, *, registry_addon: bool = True, ingress_port: int = 80,
         crds: list[dict[str, Any]] | None = None) -> None:
    """A MicroK8s cluster after `enable hybrid-knative`: Knative CRDs, Kourier's Service, the default Broker."""
    for crd in crds if crds is not None else knative_crds():
        obj = {**crd, "status": {"conditions": [{"type": "Established", "status": "True"}]}}
        server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", obj)
    server.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                                      "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "config-domain", "namespace": "knative-serving"},
                                           "data": {"hk.internal": ""}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "config-network", "namespace": "knative-serving"},
                                           "data": {"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"}})
    # Kourier's gateway as `enable` leaves it: externalIPs = the node's address (here 127.0.0.1, where the
    # test's stand-in gateway listens — the port is the Service's port, read from the Service as on a real node)
    server.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": "kourier", "namespace": "kourier-system"},
                                         "spec": {"type": "LoadBalancer", "externalIPs": ["127.0.0.1"], "ports": [
                                             {"name": "http2", "port": ingress_port, "targetPort": 8080,
                                              "nodePort": 31080}]}})
    if registry_addon:
        server.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                             "metadata": {"name": "registry", "namespace": "container-registry"},
                                             "spec": {"type": "NodePort", "ports": [
                                                 {"name": "registry", "port": 5000, "nodePort": 32000}]}})
    address = "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"
    server.put_object("eventing.knative.dev/v1", "brokers", {
        "apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
        "metadata": {"name": "default", "namespace": "default", "generation": 1},
        "spec": {}, "status": {"observedGeneration": 1, "address": {"url": address},
                               "conditions": [{"type": "Ready", "status": "True"}]}})


@pytest.fixture
def make_dev_cluster(tmp_path: Path) -> Iterator[Callable[..., DevCluster]]:
    servers: list[ApiServer] = []

    def factory(**kwargs: Any) -> DevCluster:
        server = ApiServer(controller=with_knative(FakeController())).__enter__()
        servers.append(server)
        port = kwargs.pop("ingress_port", 80)
        seed(server, ingress_port=port, **kwargs)
        kubeconfig = server.write_kubeconfig(tmp_path / f"kubeconfig{len(servers)}")
        return DevCluster(server, kubeconfig, port)

    yield factory
    for server in servers:
        server.__exit__(None, None, None)


# --- a stand-in for Kourier's gateway: routes by Host header to a function on 127.0.0.1 ------------------

@dataclasses.dataclass
class Gateway:
    port: int
    routes: dict[str, int]  # Host → backend port on 127.0.0.1
    seen: list[tuple[str, str, dict[str, str], bytes]]  # (method, host, headers, body)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    import urllib.request

    gw = Gateway(free_port(), {}, [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = str(self.headers.get("Host", "")).split(":")[0]
            gw.seen.append((self.command, host, {k.lower(): v for k, v in self.headers.items()}, body))
            backend = gw.routes.get(host)
            if backend is None:  # what Envoy answers for an unknown route
                self.send_response(404)
                self.send_header("server", "envoy")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            req = urllib.request.Request(f"http://127.0.0.1:{backend}{self.path}", data=body or None,
                                         method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status, reply_headers, payload = resp.status, dict(resp.headers), resp.read()
            except urllib.error.HTTPError as exc:
                status, reply_headers, payload = exc.code, dict(exc.headers), exc.read()
            except OSError:
                status, reply_headers, payload = 503, {}, b"no healthy upstream"
            self.send_response(status)
            for key, value in reply_headers.items():
                if key.lower() not in ("content-length", "server", "date", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _proxy

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", gw.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gw
    server.shutdown()
    server.server_close()


# --- registry, buildah and offline base images ---------------------------------------------------------

@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    need("docker-registry")
    reg, proc = start_registry(tmp_path_factory.mktemp("dev-registry"))
    yield reg
    proc.terminate()
    proc.wait(timeout=10)


def _host_rootfs(dest: Path, binaries: list[str], trees: list[str], links: dict[str, str] | None = None,
                 scripts: dict[str, bytes] | None = None) -> Path:
    """A minimal root filesystem from this host: the binaries, their shared libraries, whole folders."""
    dest.mkdir(parents=True)
    files: set[str] = set()
    for tree in trees:  # shared libraries of extension modules (e.g. _ssl → libssl)
        binaries = binaries + [str(p) for p in Path(tree).rglob("*.so") if "lib-dynload" in p.parts]
    for binary in binaries:
        real = str(Path(binary).resolve())
        files.add(real)
        out = subprocess.run(["ldd", real], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for part in line.split():
                if part.startswith("/"):
                    files.add(part)
    with tarfile.open(dest / "rootfs.tar", "w") as tar:
        for path in sorted(files):
            tar.add(str(Path(path).resolve()), arcname=path.lstrip("/"))
        for name, content in (scripts or {}).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for binary in binaries:
            if not binary.startswith("/usr/bin/"):
                continue
            name = Path(binary).name
            real = Path(binary).resolve()
            if real.name != name:  # e.g. /usr/bin/python3 → python3.11
                info = tarfile.TarInfo(f"usr/bin/{name}")
                info.type, info.linkname = tarfile.SYMTYPE, real.name
                tar.addfile(info)
        skip = ("/test/", "/idlelib/", "/tkinter/", "/ensurepip/", "/lib2to3/", "/turtledemo/", "/config-3",
                "/site-packages/", "/dist-packages/", "/EXTERNALLY-MANAGED/")
        for tree in trees:
            root = tree.lstrip("/")

            def keep(info: tarfile.TarInfo, root: str = root) -> tarfile.TarInfo | None:
                inside = info.name[len(root):] + "/"
                return None if any(s in inside for s in skip) else info

            tar.add(tree, arcname=root, filter=keep)
        info = tarfile.TarInfo("tmp")
        info.type, info.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(info)
    return dest / "rootfs.tar"


@dataclasses.dataclass
class Builder:
    buildah: Buildah
    registry: Registry
    storage: Path

    def with_mirror(self) -> Buildah:
        """buildah whose docker.io base images come from the test registry (registries.conf mirror)."""
        return dataclasses.replace(self.buildah, mirrors={"docker.io": self.registry.host})


@pytest.fixture(scope="session")
def builder(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """buildah with its own storage, and the python/node base images pushed to the registry under the
    names the templates' Dockerfiles use (docker.io/library/...), made from this host's binaries."""
    need("buildah", "skopeo")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("needs a Debian python3 in /usr/bin to make the base image")
    return make_builder(tmp_path_factory.mktemp("buildah"), registry)


def make_builder(tmp: Path, registry: Registry) -> Builder:
    """(Also used by benchmarks/functions.py.)"""
    buildah = Buildah(Runner(), tmp / "root", tmp / "run")
    python = Path("/usr/bin/python3")
    version = Path(python.resolve()).name  # python3.11
    bases = [(PYTHON_BASE, [str(python)], [f"/usr/lib/{version}"], "python3")]
    node = shutil.which("node")
    if node:
        bases.append((NODE_BASE, [node], [], "node"))
    for ref, binaries, trees, cmd in bases:
        tar = _host_rootfs(tmp / ref.replace("/", "_").replace(":", "_"), binaries, trees)
        ctr = buildah.run(["from", "scratch"]).stdout.strip().splitlines()[-1]
        buildah.run(["add", ctr, str(tar), "/"])
        buildah.run(["config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--cmd", cmd, ctr])
        buildah.run(["commit", "-q", ctr, f"localhost/base/{ref}"])
        buildah.run(["rm", ctr])
        buildah.push(f"localhost/base/{ref}", f"{registry.host}/{ref}")
    return Builder(buildah, registry, tmp)


SERVERLESS_BASE = "library/python:3.7-slim"  # what the knative-docker template's Dockerfile names
WHEELHOUSE = Path(os.environ.get("HK_TEST_WHEELHOUSE", str(Path.home() / ".cache" / "hybrid-knative" /
                                                             "test-wheelhouse")))


def make_pip_base(builder: Builder) -> None:
    """A python base with a shell and pip (Debian's), pushed as python:3.7-slim: enough for Dockerfiles with
    shell-form RUN/CMD and `pip install` (offline: from a wheelhouse)."""
    buildah = builder.buildah
    python = Path("/usr/bin/python3")
    version = Path(python.resolve()).name
    trees = [f"/usr/lib/{version}", "/usr/lib/python3/dist-packages/pip"]
    tar = _host_rootfs(builder.storage / "pip-base", [str(python), "/usr/bin/dash"], trees,
                       links={"bin": "usr/bin", "usr/bin/sh": "dash"},
                       scripts={"usr/bin/pip": b"#!/usr/bin/python3\nimport sys\n"
                                b"from pip._internal.cli.main import main\nsys.exit(main())\n"})
    ctr = buildah.run(["from", "scratch"]).stdout.strip().splitlines()[-1]
    buildah.run(["add", ctr, str(tar), "/"])
    buildah.run(["config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", "--cmd", "python3", ctr])
    buildah.run(["commit", "-q", ctr, f"localhost/base/{SERVERLESS_BASE}"])
    buildah.run(["rm", ctr])
    buildah.push(f"localhost/base/{SERVERLESS_BASE}", f"{builder.registry.host}/{SERVERLESS_BASE}")


def skopeo_digest(ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
