"""The DNS steps end to end on the API emulator: ingress address, domain, CoreDNS block, host split DNS;
re-runs write nothing; `microk8s enable dns` rewriting the Corefile is repaired; disable takes it all back."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative import addon
from hybrid_knative.cli.main import cli
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.dns import corefile, hostdns
from hybrid_knative.dns.names import DOMAIN_TEMPLATE, service_url
from hybrid_knative.errors import CommandError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from hybrid_knative.system.runner import Result
from tests.harness.runner import RecordingRunner
from tests.harness.validation import ManifestValidator
from tests.integration.conftest import CLUSTER_DNS_IP, NODE_IP, STOCK_COREFILE, Cluster

pytestmark = pytest.mark.integration
QUIET = Status(verbosity=-1)
# part B's eventing and smoke-service steps are not what these tests are about
ONLY_SERVING = {"eventing": False, "verify": False}
DROPIN = "etc/systemd/resolved.conf.d/hybrid-knative.conf"
RESTART = ("systemctl", "restart", "systemd-resolved")



def config(cluster: Cluster, **overrides: Any) -> Config:
    return cluster.config(**{**ONLY_SERVING, **overrides})


def corefile_of(cluster: Cluster) -> str:
    cm = cluster.server.get("v1", "configmaps", "coredns", "kube-system")
    assert cm is not None
    return str(cm["data"]["Corefile"])


def data_of(cluster: Cluster, name: str) -> dict[str, str]:
    cm = cluster.server.get("v1", "configmaps", name, "knative-serving")
    assert cm is not None
    return dict(cm.get("data") or {})


def external_ips(cluster: Cluster) -> list[str]:
    svc = cluster.server.get("v1", "services", "kourier", "kourier-system")
    assert svc is not None
    return list(svc["spec"].get("externalIPs") or [])


def with_resolved(cluster: Cluster) -> Path:
    (cluster.host_root / "run/systemd/resolve").mkdir(parents=True)
    return cluster.host_root / DROPIN


def test_local_mode_end_to_end(cluster: Cluster) -> None:
    dropin = with_resolved(cluster)
    runner = RecordingRunner()
    addon.enable(config(cluster), QUIET, runner=runner)
    assert external_ips(cluster) == [NODE_IP]
    domain = data_of(cluster, "config-domain")
    assert domain["hk.internal"] == "" and "_example" in domain  # upstream docs key kept
    assert data_of(cluster, "config-network")["domain-template"] == DOMAIN_TEMPLATE
    core = corefile.parse(corefile_of(cluster))
    assert [b.keys for b in core.blocks] == [(".:53",), ("hk.internal:53",)]
    assert core.ours[0].find("template")[0].block == (
        corefile.Directive("answer", (f"{{{{ .Name }}}} 60 IN A {NODE_IP}",)),)
    assert corefile_of(cluster).startswith(STOCK_COREFILE)
    assert dropin.read_text() == (
        "# Written by hybrid-knative: names under the Knative zone are answered by the cluster DNS.\n"
        "# Removed by `microk8s disable hybrid-knative`.\n"
        f"[Resolve]\nDNS={CLUSTER_DNS_IP}\nDomains=~hk.internal\n")
    assert runner.calls == [RESTART]
    assert cluster.marker.is_file()
    assert service_url("hello", "default", "hk.internal") == "http://hello-default.hk.internal"

    cluster.server.reset_requests()
    addon.enable(config(cluster), QUIET, runner=runner)
    assert cluster.server.writes() == []  # re-run: zero writes, no second restart
    assert runner.calls == [RESTART]

    cluster.server.reset_requests()
    addon.disable(config(cluster), QUIET, runner=runner)
    assert corefile_of(cluster) == STOCK_COREFILE  # restored byte for byte, the ConfigMap kept
    assert not dropin.exists() and runner.calls == [RESTART, RESTART]
    assert cluster.server.get("v1", "services", "kube-dns", "kube-system") is not None
    writes = cluster.server.writes()
    assert writes[0].method == "PATCH" and writes[0].path.endswith("/kube-system/configmaps/coredns")
    assert all(w.method == "DELETE" for w in writes[1:])  # our DNS undo first, then the recorded objects
    assert not list(cluster.state_dir.glob("dns-*.json"))
    cluster.server.reset_requests()
    addon.disable(config(cluster), QUIET, runner=runner)
    assert cluster.server.writes() == [] and len(runner.calls) == 2


def test_microk8s_enable_dns_rewriting_the_corefile_is_repaired(cluster: Cluster) -> None:
    addon.enable(config(cluster), QUIET)
    with_ours = corefile_of(cluster)
    # what `microk8s enable dns` does: re-apply its ConfigMap with the stock Corefile
    cluster.server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "coredns", "namespace": "kube-system"},
                                                   "data": {"Corefile": STOCK_COREFILE}})
    cluster.server.reset_requests()
    addon.enable(config(cluster), QUIET)
    assert [f"{w.method} {w.path}" for w in cluster.server.writes()] == [
        "PATCH /api/v1/namespaces/kube-system/configmaps/coredns"]
    assert corefile_of(cluster) == with_ours


def test_user_edits_to_the_corefile_survive_enable_and_disable(cluster: Cluster) -> None:
    edited = STOCK_COREFILE.replace("forward . /etc/resolv.conf", "forward . 192.168.1.1  # my router")
    cluster.server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "coredns", "namespace": "kube-system"},
                                                   "data": {"Corefile": edited}})
    addon.enable(config(cluster), QUIET)
    assert corefile_of(cluster).startswith(edited)
    addon.disable(config(cluster), QUIET)
    assert corefile_of(cluster) == edited


def test_without_systemd_resolved_the_lines_to_add_are_printed(cluster: Cluster, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    runner = RecordingRunner()
    addon.enable(config(cluster, domain="lab.internal"), Status(verbosity=0, tty=False), runner=runner)
    err = capsys.readouterr().err
    assert "cannot resolve *.lab.internal" in err and "nothing was changed" in err
    assert f"{NODE_IP} <service>-<namespace>.lab.internal" in err
    # never the advice that makes CoreDNS (forwarding to this resolv.conf) loop
    assert f"Do NOT put `nameserver {CLUSTER_DNS_IP}`" in err
    assert not any(line.lstrip().startswith("nameserver") for line in err.splitlines())
    assert f"address=/lab.internal/{NODE_IP}" in err  # other machines on the LAN
    assert f"Ingress address: {NODE_IP}" in err
    # the step changed nothing on purpose: its line says so instead of a check mark
    assert "– Resolve the Knative zone on this host (split DNS) (nothing changed on this host" in err
    assert "✓ Resolve the Knative zone on this host" not in err
    assert runner.calls == [] and not (cluster.host_root / "etc").exists()
    assert "lab.internal" in data_of(cluster, "config-domain")
    assert corefile.parse(corefile_of(cluster)).ours[0].zones == [("lab.internal", 53)]
    addon.disable(config(cluster), QUIET, runner=runner)
    assert not list(cluster.state_dir.glob("dns-*.json")) and runner.calls == []


NM_RELOAD = ("nmcli", "general", "reload", "dns-full")


def test_networkmanager_dnsmasq_host_gets_a_server_line(cluster: Cluster) -> None:
    (cluster.host_root / "run/NetworkManager").mkdir(parents=True)
    (cluster.host_root / "etc/NetworkManager").mkdir(parents=True)
    (cluster.host_root / "etc/NetworkManager/NetworkManager.conf").write_text("[main]\ndns=dnsmasq\n")
    runner = RecordingRunner()
    addon.enable(config(cluster), QUIET, runner=runner)
    path = cluster.host_root / "etc/NetworkManager/dnsmasq.d/hybrid-knative.conf"
    assert path.read_text().endswith(f"server=/hk.internal/{CLUSTER_DNS_IP}\n")
    assert runner.calls == [NM_RELOAD]
    addon.enable(config(cluster), QUIET, runner=runner)
    assert runner.calls == [NM_RELOAD]
    addon.disable(config(cluster), QUIET, runner=runner)
    assert not path.exists() and runner.calls == [NM_RELOAD, NM_RELOAD]


@dataclasses.dataclass(frozen=True)
class FailingRunner(RecordingRunner):
    """systemctl that fails while ``broken[0]`` is true (systemd-resolved's unit busy or failing)."""

    broken: list[bool] = dataclasses.field(default_factory=lambda: [True])

    def run(self, argv: Sequence[str | Path], **kwargs: Any) -> Result:
        super().run(argv, **kwargs)
        if self.broken[0]:
            raise CommandError([str(a) for a in argv], 1, stderr="Job for systemd-resolved.service failed")
        return Result(tuple(str(a) for a in argv), 0, "", "")


def test_a_failed_resolved_restart_is_retried_by_the_next_run(cluster: Cluster, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setattr(hostdns.time, "sleep", lambda _s: None)
    dropin = with_resolved(cluster)
    runner = FailingRunner()
    with pytest.raises(CommandError):
        addon.enable(config(cluster), QUIET, runner=runner)
    assert dropin.is_file() and runner.calls == [RESTART] * 3  # retried, then reported
    runner.broken[0] = False
    addon.enable(config(cluster), QUIET, runner=runner)  # the content is unchanged, the restart still owed
    assert runner.calls == [RESTART] * 4
    addon.enable(config(cluster), QUIET, runner=runner)
    assert runner.calls == [RESTART] * 4

    runner.broken[0] = True
    with pytest.raises(CommandError):
        addon.disable(config(cluster), QUIET, runner=runner)
    assert not dropin.exists() and runner.calls == [RESTART] * 7
    runner.broken[0] = False
    addon.disable(config(cluster), QUIET, runner=runner)  # the file is gone: the restart is still done
    assert runner.calls == [RESTART] * 8
    assert not list(cluster.state_dir.glob("dns-*.json"))


def test_ingress_ip_override(cluster: Cluster) -> None:
    addon.enable(config(cluster, ingress_ip="10.0.0.77"), QUIET)
    assert external_ips(cluster) == ["10.0.0.77"]
    assert "10.0.0.77" in corefile_of(cluster)


def test_ingress_addon_on_the_node_address_is_a_conflict(cluster: Cluster) -> None:
    cluster.server.put_object("apps/v1", "daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "nginx-ingress-microk8s-controller", "namespace": "ingress"},
        "spec": {"selector": {"matchLabels": {"name": "x"}}, "template": {"metadata": {"labels": {"name": "x"}},
                 "spec": {"containers": [{"name": "c", "image": "x:1", "ports": [
                     {"containerPort": 80, "hostPort": 80}, {"containerPort": 443, "hostPort": 443}]}]}}}})
    with pytest.raises(PermanentError) as err:
        addon.enable(config(cluster), QUIET)
    assert "ingress addon already serves ports 80/443" in err.value.brief
    assert "microk8s disable ingress" in (err.value.resolution or "")
    assert external_ips(cluster) == [] and corefile_of(cluster) == STOCK_COREFILE
    addon.enable(config(cluster, ingress_ip="10.0.0.200"), QUIET)  # an address of its own is fine
    assert external_ips(cluster) == ["10.0.0.200"]


def test_a_load_balancer_address_is_used_as_is(cluster: Cluster) -> None:
    from hybrid_knative.dns import ingress

    cluster.server.put_object("v1", "services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace": "kourier-system"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http2", "port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.240"}]}}})
    kube = KubeApi.connect(cluster.kubeconfig)
    chosen = ingress.choose(kube, override=None, hostname="elsewhere")
    assert chosen == ingress.IngressAddress("10.0.0.240", "load balancer") and not chosen.needs_external_ip
    assert ingress.current(kube) == "10.0.0.240"
    assert ingress.choose(kube, override="10.0.0.7", hostname=None).source == "--ingress-ip"


def test_no_node_address_asks_for_ingress_ip(cluster: Cluster) -> None:
    cluster.server.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"},
                                              "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]}})
    with pytest.raises(PermanentError) as err:
        addon.enable(config(cluster), QUIET)
    assert "--ingress-ip" in (err.value.resolution or "")
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_missing_cluster_dns_is_explained(cluster: Cluster) -> None:
    cluster.server.delete_object("v1", "configmaps", "coredns", "kube-system")
    with pytest.raises(PermanentError) as err:
        addon.enable(config(cluster), QUIET)
    assert "microk8s enable dns" in (err.value.resolution or "")


def dead_resolver() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_magic_mode_offline_is_refused(cluster: Cluster) -> None:
    with pytest.raises(PermanentError) as err:
        addon.enable(config(cluster, domain_mode="magic", dns_servers=(dead_resolver(),)), QUIET)
    assert "magic DNS (10.0.0.5.sslip.io) cannot work here" in err.value.brief
    assert "offline" in (err.value.details or "") and "--domain-mode local" in (err.value.resolution or "")
    assert "10.0.0.5.sslip.io" not in data_of(cluster, "config-domain")
    assert corefile_of(cluster) == STOCK_COREFILE and marker.read(cluster.marker) == marker.INCOMPLETE


def test_custom_mode_prints_the_record_and_switching_modes_cleans_up(cluster: Cluster,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    dropin = with_resolved(cluster)
    runner = RecordingRunner()
    addon.enable(config(cluster), QUIET, runner=runner)
    assert dropin.exists() and corefile.parse(corefile_of(cluster)).ours
    capsys.readouterr()
    addon.enable(config(cluster, domain_mode="custom", domain="apps.example.com", dns_servers=(dead_resolver(),)),
                 Status(verbosity=0, tty=False), runner=runner)
    err = capsys.readouterr().err
    assert f"*.apps.example.com. IN A {NODE_IP}" in err
    assert "! " in err and "could not be checked" in err  # a warning, the install goes on
    domain = data_of(cluster, "config-domain")
    assert "apps.example.com" in domain and "hk.internal" not in domain
    assert corefile_of(cluster) == STOCK_COREFILE  # public DNS serves custom domains
    assert not dropin.exists() and runner.calls == [RESTART, RESTART]
    assert cluster.marker.is_file()


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("flags, words", [
    (["--domain-mode", "public"], "Invalid value for '--domain-mode'"),
    (["--domain-mode", "custom"], "--domain-mode custom needs --domain"),
    (["--domain", "bad_name.example"], "RFC 1123"),
    (["--domain", "localhost"], "single label"),
    (["--ingress-ip", "300.1.2.3"], "is not an IP address"),
    (["--domain-mode", "magic", "--domain", "x.example.com"], "cannot be used with --domain-mode magic"),
])
def test_bad_dns_input_is_refused_before_any_write(cluster: Cluster, flags: list[str], words: str) -> None:
    code, out = run_cli("enable", *flags, *cluster.cli_args())
    assert code == 2, out
    assert words in out and "Traceback" not in out
    assert cluster.server.writes() == []
    assert corefile_of(cluster) == STOCK_COREFILE


def test_plan_shows_the_domain_patches(cluster: Cluster, tmp_path: Path) -> None:
    out_dir = tmp_path / "plan"
    code, out = run_cli("plan", "-o", str(out_dir), "--kubernetes-version", "1.34", "--domain-mode", "custom",
                        "--domain", "apps.example.com", "--ingress-ip", "10.0.0.5", *cluster.cli_args())
    assert code == 0, out
    assert "configure_domain" in out and "configure_cluster_dns" in out and "configure_host_dns" in out
    [domain_file] = out_dir.glob("*-configure_domain.yaml")
    docs = list(yaml.safe_load_all(domain_file.read_text()))
    assert docs[0]["data"] == {"apps.example.com": ""}
    assert docs[1]["data"] == {"domain-template": DOMAIN_TEMPLATE}
    [ingress_file] = out_dir.glob("*-configure_ingress_address.yaml")
    assert yaml.safe_load(ingress_file.read_text())["spec"] == {"externalIPs": ["10.0.0.5"]}
    assert cluster.server.writes() == []


@pytest.mark.parametrize("kube", ["1.32", "1.36"])
def test_rendered_dns_patches_validate(kube: str, make_cluster: Callable[..., Cluster]) -> None:
    cfg = Config(domain_mode="custom", domain="apps.example.com", ingress_ip="10.0.0.5")
    _, rendered = addon.render(cfg, KubeVersion.parse(kube), QUIET)
    objs = [o for r in rendered if r.step.name.startswith("configure_") for o in r.objects]
    assert {o["metadata"]["name"] for o in objs} >= {"config-domain", "config-network", "kourier"}
    assert ManifestValidator(kube).validate_all(objs) == []


def test_status_and_doctor_report_a_dropped_corefile_block(cluster: Cluster) -> None:
    """`microk8s enable dns` re-applies the stock Corefile: names in the zone stop resolving. Before, both
    `status` and `doctor` said healthy (exit 0)."""
    run_cli("enable", *cluster.cli_args(), "--no-eventing")
    code, out = run_cli("status", *cluster.cli_args(install=False))
    assert code == 0 and "✓ dns-corefile" in out, out
    # this host root has a plain resolv.conf: host DNS is the user's, not a passed check
    assert "– dns-host: hello-default.hk.internal is not resolved on this host" in out and "✓ dns-host" not in out
    cluster.server.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "coredns", "namespace": "kube-system"},
                                                   "data": {"Corefile": STOCK_COREFILE}})
    code, out = run_cli("status", *cluster.cli_args(install=False))
    assert code == 3 and "✗ dns-corefile" in out and "sudo hybrid-knative repair" in out, out
    code, out = run_cli("doctor", "--no-pod-check", *cluster.cli_args(install=False))
    assert code == 3 and "✗ dns-corefile" in out and "CoreDNS does not carry the Knative zone hk.internal" in out
    run_cli("repair", *cluster.cli_args(), "--no-eventing")
    code, out = run_cli("status", *cluster.cli_args(install=False))
    assert code == 0 and "✓ dns-corefile" in out, out
