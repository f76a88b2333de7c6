"""Fixtures for flows against the in-process Kubernetes API emulator (real HTTP, real lightkube)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hybrid_knative.config import Config
from tests.harness.emulator import ApiServer, FakeController


@dataclasses.dataclass
class Cluster:
    server: ApiServer
    controller: FakeController
    kubeconfig: Path
    state_dir: Path
    marker: Path

    def config(self, **overrides: object) -> Config:
        values: dict[str, object] = {
            "kubeconfig": self.kubeconfig, "state_dir": self.state_dir, "marker": self.marker,
            "wait_timeout": 5.0, "poll_interval": 0.001, "offline": True,
        }
        values.update(overrides)
        return Config(**values)  # type: ignore[arg-type]

    def cli_args(self, *, install: bool = True) -> list[str]:
        args = ["--kubeconfig", str(self.kubeconfig), "--state-dir", str(self.state_dir),
                "--poll-interval", "0.001", "--timeout", "5"]
        return [*args, "--offline"] if install else args


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    servers: list[ApiServer] = []

    def factory(version: str = "1.34.2", controller: FakeController | None = None) -> Cluster:
        controller = controller or FakeController()
        server = ApiServer(version=version, controller=controller).__enter__()
        servers.append(server)
        root = tmp_path / f"cluster{len(servers)}"
        root.mkdir()
        kubeconfig = server.write_kubeconfig(root / "kubeconfig")
        return Cluster(server, controller, kubeconfig, root / "state", root / "state" / "hybrid-knative.enabled")

    yield factory
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster()
