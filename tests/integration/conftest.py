"""Fixtures for flows against the in-process Kubernetes API emulator (real HTTP, real lightkube)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybrid_knative.config import Config
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.knative import with_knative


@dataclasses.dataclass
class Cluster:
    server: ApiServer
    controller: FakeController
    kubeconfig: Path
    state_dir: Path
    marker: Path

    @property
    def host_root(self) -> Path:
        """The host's files for DNS steps (a systemd-resolved drop-in) go here, never to the real /etc."""
        return self.state_dir.parent / "host"

    def config(self, **overrides: object) -> Config:
        values: dict[str, object] = {
            "kubeconfig": self.kubeconfig, "state_dir": self.state_dir, "marker": self.marker,
            "wait_timeout": 5.0, "poll_interval": 0.001, "offline": True, "gpu": "none", "host_root": self.host_root,
            "verify": False,  # no traffic flows through the emulator: verify tests opt in with probes
        }
        values.update(overrides)
        return Config(**values)  # type: ignore[arg-type]

    def cli_args(self, *, install: bool = True) -> list[str]:
        args = ["--kubeconfig", str(self.kubeconfig), "--state-dir", str(self.state_dir),
                "--poll-interval", "0.001", "--timeout", "5"]
        extra = ["--offline", "--host-root", str(self.host_root), "--no-verify", "--gpu", "none"]
        return [*args, *extra] if install else args


NODE_IP = "10.0.0.5"
CLUSTER_DNS_IP = "10.152.183.10"
# The Corefile `microk8s enable dns` writes (MicroK8s's dns addon, coredns.yaml)
STOCK_COREFILE = """\
.:53 {
    errors
    health {
      lameduck 5s
    }
    ready
    log . {
      class error
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""


def seed_microk8s(server: ApiServer, *, node_ip: str = NODE_IP) -> None:
    """What every MicroK8s cluster has before hybrid-knative: its node, CoreDNS and kube-dns (dns addon)."""
    server.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                                      "status": {"addresses": [{"type": "InternalIP", "address": node_ip},
                                                               {"type": "Hostname", "address": "node-1"}]}})
    server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": "coredns", "namespace": "kube-system"},
                                           "data": {"Corefile": STOCK_COREFILE}})
    server.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                                         "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": [
                                             {"name": "dns", "port": 53, "protocol": "UDP"}]}})


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    servers: list[ApiServer] = []

    def factory(version: str = "1.34.2", controller: FakeController | None = None) -> Cluster:
        controller = with_knative(controller or FakeController())  # Knative controllers: KService, Broker
        server = ApiServer(version=version, controller=controller).__enter__()
        servers.append(server)
        root = tmp_path / f"cluster{len(servers)}"
        root.mkdir()
        kubeconfig = server.write_kubeconfig(root / "kubeconfig")
        seed_microk8s(server)
        return Cluster(server, controller, kubeconfig, root / "state", root / "state" / "hybrid-knative.enabled")

    yield factory
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster()
