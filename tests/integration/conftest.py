"""Fixtures for flows against the in-process Kubernetes API emulator (real HTTP, real lightkube)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybrid_knative.config import Config
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.emulator.microk8s import CLUSTER_DNS_IP, NODE_IP, STOCK_COREFILE, seed_microk8s
from tests.harness.knative import with_knative

__all__ = ["CLUSTER_DNS_IP", "NODE_IP", "STOCK_COREFILE", "Cluster", "seed_microk8s"]


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
