"""Host split DNS under a temporary root: the systemd-resolved drop-in, its restart, the fallback."""

from __future__ import annotations

from pathlib import Path

from tests.harness.runner import RecordingRunner

from hybrid_knative.dns import hostdns

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
    assert not hostdns.remove(path, runner, restart=True) and len(runner.calls) == 2


def test_without_systemd_resolved_prints_the_lines_to_add(tmp_path: Path) -> None:
    runner = RecordingRunner()
    change = hostdns.apply(tmp_path, "lab.internal", "10.152.183.10", runner)
    assert not change.changed and change.path is None and runner.calls == []
    assert not (tmp_path / "etc").exists()
    text = "\n".join(change.fallback)
    assert "systemd-resolved is not running" in change.fallback[0]
    assert "server=/lab.internal/10.152.183.10" in text
    assert "nameserver 10.152.183.10" in text
    assert hostdns.lan_hint("lab.internal", "10.0.0.5").count("address=/lab.internal/10.0.0.5") == 1
