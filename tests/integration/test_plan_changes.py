"""`plan` shows every change — objects, patches to objects we do not own, host files, commands — and,
against a live cluster (the API emulator), marks each create / update / unchanged with zero writes."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from hybrid_knative import addon
from hybrid_knative.cli.main import cli
from hybrid_knative.progress import Status
from tests.integration.conftest import CLUSTER_DNS_IP, NODE_IP, Cluster

QUIET = Status(verbosity=-1)
DROPIN = "etc/systemd/resolved.conf.d/hybrid-knative.conf"


def plan(cluster: Cluster, out: Path, *extra: str) -> str:
    args = [*cluster.cli_args(install=False), "--offline", "--host-root", str(cluster.host_root), "--gpu", "none",
            "--broker-namespace", "events", *extra]
    result = CliRunner().invoke(cli, ["plan", "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return (out / "plan.txt").read_text()


def changes(out: Path, step: str) -> str:
    [path] = out.glob(f"*-{step}.changes.txt")
    return path.read_text()


def test_plan_against_the_live_cluster_shows_everything_and_writes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    (cluster.host_root / "run/systemd/resolve").mkdir(parents=True)  # systemd-resolved runs on this host
    cluster.server.reset_requests()
    summary = plan(cluster, tmp_path / "p1")
    assert cluster.server.writes() == []  # GETs only
    assert not (cluster.host_root / DROPIN).exists()
    assert "compared with http" in summary.splitlines()[0]
    # objects: everything is new on a fresh cluster
    assert "[create] object Deployment knative-serving/activator" in summary
    assert "[update] patch ConfigMap knative-serving/config-network" in summary
    # the CoreDNS block: the resulting Corefile and a diff against the live one
    core = changes(tmp_path / "p1", "configure_cluster_dns")
    assert "[update]" in core and "hk.internal:53 {" in core
    assert "--- Corefile (live)" in core and "+++ Corefile (after enable)" in core and "+hk.internal:53" in core
    # Kourier's externalIPs, the host drop-in with its content, the restart, the broker namespace, the probe Job
    ingress = changes(tmp_path / "p1", "configure_ingress_address")
    assert yaml.safe_load(ingress.split("\n", 1)[1]) == {"spec": {"externalIPs": [NODE_IP]}}
    host = changes(tmp_path / "p1", "configure_host_dns")
    assert f"# host-file: {cluster.host_root / DROPIN} [create]" in host
    assert f"DNS={CLUSTER_DNS_IP}\nDomains=~hk.internal" in host
    assert "# command: systemctl restart systemd-resolved [run]" in host
    broker = changes(tmp_path / "p1", "create_default_broker")
    assert "# object: Namespace events [create]" in broker
    smoke = changes(tmp_path / "p1", "verify_smoke_service")
    assert "# object: Job " in smoke and "kind: Job" in smoke and "GET <the smoke service URL>" in smoke
    assert "host-file" in changes(tmp_path / "p1", "mark_enabled")


def test_plan_after_enable_says_unchanged(cluster: Cluster, tmp_path: Path) -> None:
    addon.enable(cluster.config(broker_namespace="events"), QUIET)
    cluster.server.reset_requests()
    summary = plan(cluster, tmp_path / "p2", "--no-verify")
    assert cluster.server.writes() == []
    assert "[unchanged] object Deployment knative-serving/activator" in summary
    assert "[unchanged] patch ConfigMap knative-serving/config-network" in summary
    assert "[create]" not in summary
    core = changes(tmp_path / "p2", "configure_cluster_dns")
    assert "[unchanged]" in core
    assert "[unchanged]" in changes(tmp_path / "p2", "configure_ingress_address")
    assert "# object: Namespace events [unchanged]" in changes(tmp_path / "p2", "create_default_broker")
