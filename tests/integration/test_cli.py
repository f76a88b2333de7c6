"""The CLI end to end: bad input gives one clear error, a non-zero exit, and no object written."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative.catalog import load_catalog
from hybrid_knative.cli.main import cli
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR
from tests.harness.emulator import FakeController
from tests.integration.conftest import Cluster


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_enable_status_disable_through_the_cli(cluster: Cluster) -> None:
    code, out = run("enable", *cluster.cli_args())
    assert code == 0, out
    for title in ("Install Knative Serving CRDs", "Install Knative Serving core", "Install Kourier networking",
                  "Configure Knative Serving", "Mark hybrid-knative enabled"):
        # components installed side by side mark their lines: "✓ [knative-serving] Install Knative Serving CRDs"
        assert any(line.startswith("✓ ") and f" {title}" in line for line in out.splitlines()), out
    assert "✓ [net-kourier] Install Kourier networking" in out and "✓ [knative-eventing] " in out
    assert "Knative 1.23 is enabled" in out
    code, out = run("status", "--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(cluster.state_dir))
    assert code == 0, out
    assert "enabled: yes" in out and "knative-serving/activator" in out
    code, out = run("enable", *cluster.cli_args())
    assert code == 0 and "(0 writes)" in out
    code, out = run("disable", *cluster.cli_args(install=False))
    assert code == 0, out
    code, out = run("status", "--kubeconfig", str(cluster.kubeconfig), "--state-dir", str(cluster.state_dir))
    assert code == 3 and "enabled: no" in out


def test_unknown_flag(cluster: Cluster) -> None:
    code, out = run("enable", "--no-such-flag", *cluster.cli_args())
    assert code == 2
    assert "No such option" in out and "--no-such-flag" in out
    assert cluster.server.writes() == []


def test_bad_kubeconfig_path(tmp_path: Path) -> None:
    code, out = run("enable", "--kubeconfig", str(tmp_path / "nope"), "--state-dir", str(tmp_path))
    assert code == 2
    assert "kubeconfig not found" in out
    assert "Traceback" not in out


def test_garbage_kubeconfig(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(": : not yaml [")
    code, out = run("enable", "--kubeconfig", str(kc), "--state-dir", str(tmp_path))
    assert code == 2
    assert "kubeconfig" in out and "Traceback" not in out


def test_unknown_context(cluster: Cluster) -> None:
    code, out = run("enable", *cluster.cli_args(), "--context", "nope")
    assert code == 2
    assert "nope" in out
    assert cluster.server.writes() == []


def test_unreachable_api_server(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "x", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }))
    code, out = run("enable", "--kubeconfig", str(kc), "--state-dir", str(tmp_path / "s"))
    assert code == 1
    assert "not reachable" in out
    assert "microk8s status --wait-ready" in out
    assert "Traceback" not in out


def test_corrupt_vendored_file_writes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    f = load_catalog().release("1.23").component("knative-serving").file("serving-core.yaml")
    bad_dir = tmp_path / "upstream"
    (bad_dir / f.path).parent.mkdir(parents=True)
    shutil.copyfile(PACKAGE_VENDOR_DIR / f.path, bad_dir / f.path)
    with (bad_dir / f.path).open("a") as fh:
        fh.write("\n# one extra line\n")
    code, out = run("enable", *cluster.cli_args(), "--upstream-dir", str(bad_dir))
    assert code == 1
    assert "checksum mismatch for knative-serving/1.23.0/serving-core.yaml" in out
    assert cluster.server.writes() == []
    assert not cluster.marker.exists()


def test_timeout_error_names_the_object(make_cluster) -> None:  # type: ignore[no-untyped-def]
    from tests.harness.emulator import FakeController

    cluster = make_cluster(controller=FakeController(never_ready={"webhook"}))
    args = [a if a != "5" else "1" for a in cluster.cli_args()]
    code, out = run("enable", *args)
    assert code == 1
    assert "✗ [knative-serving] Install Knative Serving core" in out  # beside Eventing: lines name the component
    assert "Deployment knative-serving/webhook" in out
    assert "What to do:" in out


@pytest.mark.parametrize("bad", [["--knative", "latest"], ["--timeout", "0"], ["--kubernetes-version", "x"]])
def test_plan_rejects_bad_values(tmp_path: Path, bad: list[str]) -> None:
    code, out = run("plan", "-o", str(tmp_path / "p"), "--kubernetes-version", "1.34", *bad)
    assert code == 2, out
    assert not (tmp_path / "p").exists()


def test_plan_without_a_cluster(tmp_path: Path) -> None:
    out_dir = tmp_path / "plan"
    code, out = run("plan", "--output", str(out_dir), "--kubernetes-version", "1.34")
    assert code == 0, out
    files = sorted(p.name for p in out_dir.glob("*.yaml"))
    assert files[:4] == ["01-install_serving_crds.yaml", "02-install_serving_core.yaml", "03-install_kourier.yaml",
                         "04-configure_serving.yaml"]
    assert files[4:8] == ["05-configure_ingress_address.yaml", "06-configure_domain.yaml",
                          "07-configure_cluster_dns.yaml", "08-configure_host_dns.yaml"]
    assert files[-1].endswith("-mark_enabled.yaml")
    docs = [d for p in sorted(out_dir.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "Deployment", "ValidatingWebhookConfiguration", "ConfigMap"} <= kinds
    assert "Knative 1.23 on Kubernetes 1.34" in out
    # re-planning into the same folder is fine; into a foreign non-empty folder is refused
    assert run("plan", "--output", str(out_dir), "--kubernetes-version", "1.34")[0] == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, out = run("plan", "--output", str(foreign), "--kubernetes-version", "1.34")
    assert code == 2 and "not empty" in out
    assert (foreign / "notes.txt").read_text() == "mine"


def test_help_and_versions() -> None:
    code, out = run("enable", "--help")
    assert code == 0 and "--kubeconfig" in out and "--knative" in out
    code, out = run("versions")
    assert code == 0 and "1.23" in out and "1.34" in out


def test_repair_finishes_a_half_way_enable_and_status_says_incomplete(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(never_ready={"3scale-kourier-gateway"}))
    code, _out = run("enable", *cluster.cli_args(), "--timeout", "1")
    assert code != 0
    code, out = run("status", *cluster.cli_args(install=False))
    assert code == 3 and "enabled: incomplete" in out and "sudo hybrid-knative repair" in out
    cluster.controller.never_ready.clear()
    code, out = run("repair", *cluster.cli_args())
    assert code == 0, out
    code, out = run("status", *cluster.cli_args(install=False))
    assert code == 0 and "enabled: yes (not verified" in out
