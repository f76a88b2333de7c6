"""Host split DNS under a temporary root: the systemd-resolved drop-in, its restart, the fallback."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.harness.runner import RecordingRunner

from hybrid_knative.dns import hostdns
from hybrid_knative.errors import CommandError
from hybrid_knative.system.runner import Result

EXPECTED = """\
# Written by hybrid-knative: names under the Knative zone are answered by the cluster DNS.
# Removed by `microk8s disable hybrid-knative`.
[Resolve]
DNS=10.152.183.10
Domains=~hk.internal
"""


def test_dropin_written_and_resolved_restarted(tmp_path: Path) -> None:
    (tmp_path / "run/systemd/resolve").mkdir(parents=True)
    runner = RecordingRunner()
    change = hostdns.apply(tmp_path, "hk.internal", "10.152.183.10", runner)
    path = tmp_path / "etc/systemd/resolved.conf.d/hybrid-knative.conf"
    assert change.changed and change.path == path and not change.fallback
    assert path.read_text() == EXPECTED
    assert path.stat().st_mode & 0o777 == 0o644
    assert runner.calls == [("systemctl", "restart", "systemd-resolved")]
    again = hostdns.apply(tmp_path, "hk.internal", "10.152.183.10", runner)
    assert not again.changed and runner.calls == [("systemctl", "restart", "systemd-resolved")]
    assert hostdns.remove(path, runner, restart=True)
    assert not path.exists() and len(runner.calls) == 2
    # a reload still owed (the caller keeps it in the DNS state until it succeeded) runs again
    assert not hostdns.remove(path, runner, restart=True) and len(runner.calls) == 3
    assert not hostdns.remove(path, runner, restart=False) and len(runner.calls) == 3


def test_without_systemd_resolved_prints_the_lines_to_add(tmp_path: Path) -> None:
    runner = RecordingRunner()
    change = hostdns.apply(tmp_path, "lab.internal", "10.152.183.10", runner, ingress_ip="192.168.1.20")
    assert not change.changed and change.path is None and runner.calls == [] and change.mode == "manual"
    assert not (tmp_path / "etc").exists()
    text = "\n".join(change.fallback)
    assert "cannot resolve *.lab.internal" in change.fallback[0]
    assert "192.168.1.20 <service>-<namespace>.lab.internal" in text
    assert "address=/lab.internal/192.168.1.20" in text
    assert hostdns.lan_hint("lab.internal", "10.0.0.5").count("address=/lab.internal/10.0.0.5") == 1


def advice(lines: tuple[str, ...]) -> list[str]:
    return [line for line in lines if line.startswith("  ")]


@pytest.mark.parametrize("resolv", ["nameserver 192.168.1.1\n", "nameserver 127.0.0.1\n", ""])
def test_never_advises_the_cluster_dns_as_a_nameserver(tmp_path: Path, resolv: str) -> None:
    """CoreDNS forwards to the host's resolv.conf: `nameserver <cluster DNS>` there makes it loop."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/resolv.conf").write_text(resolv)
    lines = hostdns.fallback_lines("hk.internal", "10.152.183.10", "192.168.1.20", hostdns.detect(tmp_path))
    assert advice(lines) and not any("nameserver" in line for line in advice(lines))
    assert "Do NOT put `nameserver 10.152.183.10`" in lines[-1]
    # a local dnsmasq in resolv.conf may send the zone to CoreDNS (which answers it itself: no loop)
    assert any("server=/hk.internal/10.152.183.10" in line for line in advice(lines)) == ("127.0.0.1" in resolv)


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.mark.parametrize(("files", "mode"), [
    ({"run/systemd/resolve/stub-resolv.conf": ""}, "resolved"),
    # NetworkManager with dns=systemd-resolved: resolved runs, the drop-in applies
    ({"run/systemd/resolve/stub-resolv.conf": "", "run/NetworkManager/x": "",
      "etc/NetworkManager/conf.d/dns.conf": "[main]\ndns=systemd-resolved\n"}, "resolved"),
    ({"run/NetworkManager/x": "", "etc/NetworkManager/NetworkManager.conf": "[main]\nplugins=ifupdown\ndns=dnsmasq\n"},
     "nm-dnsmasq"),
    # a later conf.d file overrides NetworkManager.conf
    ({"run/NetworkManager/x": "", "etc/NetworkManager/NetworkManager.conf": "[main]\ndns=dnsmasq\n",
      "etc/NetworkManager/conf.d/99-default.conf": "[main]\ndns=default\n"}, "manual"),
    ({"run/NetworkManager/x": "", "usr/lib/NetworkManager/conf.d/00-dnsmasq.conf": "[main]\ndns=dnsmasq\n"},
     "nm-dnsmasq"),
    # configured but NetworkManager not running
    ({"etc/NetworkManager/NetworkManager.conf": "[main]\ndns=dnsmasq\n"}, "manual"),
    ({"etc/resolv.conf": "nameserver 192.168.1.1\n"}, "manual"),
])
def test_detect_the_hosts_resolver(tmp_path: Path, files: dict[str, str], mode: str) -> None:
    for rel, text in files.items():
        write(tmp_path, rel, text)
    assert hostdns.detect(tmp_path).mode == mode


def test_networkmanager_dnsmasq_gets_a_server_line_and_a_reload(tmp_path: Path) -> None:
    write(tmp_path, "run/NetworkManager/x", "")
    write(tmp_path, "etc/NetworkManager/conf.d/dns.conf", "[main]\ndns=dnsmasq\n")
    runner = RecordingRunner()
    change = hostdns.apply(tmp_path, "hk.internal", "10.152.183.10", runner)
    assert change.changed and change.path == tmp_path / "etc/NetworkManager/dnsmasq.d/hybrid-knative.conf"
    assert change.path.read_text().endswith("server=/hk.internal/10.152.183.10\n")
    assert runner.calls == [("nmcli", "general", "reload", "dns-full")]
    assert not hostdns.apply(tmp_path, "hk.internal", "10.152.183.10", runner).changed and len(runner.calls) == 1
    # a reload owed by an earlier failed run is done although the content is unchanged
    hostdns.apply(tmp_path, "hk.internal", "10.152.183.10", runner, reload_pending=True)
    assert len(runner.calls) == 2


@dataclasses.dataclass(frozen=True)
class FlakyRunner(RecordingRunner):
    failures: list[int] = dataclasses.field(default_factory=lambda: [0])

    def run(self, argv: Sequence[str | Path], **kwargs: Any) -> Result:
        super().run(argv, **kwargs)
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise CommandError([str(a) for a in argv], 1, stderr="Job for systemd-resolved.service failed")
        return Result(tuple(str(a) for a in argv), 0, "", "")


def test_a_failed_restart_is_retried(tmp_path: Path) -> None:
    slept: list[float] = []
    runner = FlakyRunner(failures=[2])
    hostdns.reload(hostdns.RESTART, runner, sleep=slept.append)
    assert len(runner.calls) == 3 and len(slept) == 2
    runner = FlakyRunner(failures=[5])
    with pytest.raises(CommandError) as err:
        hostdns.reload(hostdns.RESTART, runner, sleep=slept.append)
    assert "failed 3 times" in err.value.brief and "retried by the next run" in (err.value.resolution or "")
