"""`hybrid-knative bootstrap` against faithful fakes of the `snap` and `microk8s` CLIs (tests/snap/fakes.py).

The MicroK8s side clones the addon repository for real (git) and validates it with MicroK8s's rules;
the port probe uses real sockets on 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_knative import bootstrap as boot
from hybrid_knative.cli.main import cli
from hybrid_knative.errors import CommandError, ConfigError, DeadlineExceeded, HybridError, PermanentError
from hybrid_knative.progress import Status
from tests.snap.conftest import needs_git
from tests.snap.fakes import Fakes

pytestmark = needs_git

GIB = 1024**3
MUTATING = ({"snap", "install"}, {"microk8s", "enable"}, {"microk8s", "addons", "repo", "add"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def host(**overrides: object) -> boot.Host:
    values: dict[str, object] = {"machine": lambda: "x86_64", "memory_bytes": lambda: 8 * GIB,
                                 "disk_free_bytes": lambda path: 50 * GIB, "is_root": lambda: True}
    values.update(overrides)
    return boot.Host(**values)  # type: ignore[arg-type]


def options(tmp_path: Path, addon_repo: Path, **overrides: object) -> boot.Options:
    values: dict[str, object] = {
        "channel": boot.Channel.parse("1.35/stable"), "addon_repo": addon_repo,
        "repo_copy": tmp_path / "snap-common" / "addon-repo", "ports": (_free_port(), _free_port()),
        "disk_path": tmp_path, "ready_timeout": 5,
    }
    values.update(overrides)
    return boot.Options(**values)  # type: ignore[arg-type]


def run(opts: boot.Options, **host_overrides: object) -> tuple[boot.Outcome, str]:
    stream = io.StringIO()
    outcome = boot.bootstrap(opts, Status(stream=stream, verbosity=1, tty=False), host=host(**host_overrides))
    return outcome, stream.getvalue()


def fail(opts: boot.Options, error: type[HybridError] = HybridError,
         **host_overrides: object) -> tuple[HybridError, str]:
    stream = io.StringIO()
    with pytest.raises(error) as caught:
        boot.bootstrap(opts, Status(stream=stream, verbosity=1, tty=False), host=host(**host_overrides))
    return caught.value, stream.getvalue()


def mutations(fakes: Fakes) -> list[list[str]]:
    return [c for c in fakes.calls if any(m <= set(c) for m in MUTATING)]


# --------------------------------------------------------------------------------- the paths


def test_fresh_host(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    opts = options(tmp_path, addon_repo, enable_args=("--knative", "1.23"))
    outcome, out = run(opts)
    assert outcome == boot.Outcome(installed_microk8s=True, added_repo=True, enabled=True,
                                   url="http://hello-default.hk.internal", track="1.35")
    assert ["snap", "install", "microk8s", "--classic", "--channel", "1.35/stable"] in fakes.calls
    assert ["microk8s", "status", "--wait-ready", "--timeout", "5"] in fakes.calls
    add = [c for c in fakes.calls if c[1:4] == ["addons", "repo", "add"]]
    assert add == [["microk8s", "addons", "repo", "add", "hybrid-knative", str(opts.repo_copy), "--reference", "1.35"]]
    state = fakes.read()
    assert state["enable_args"] == ["--knative", "1.23"]
    assert "state enabled" in (Path(state["snap_data"]) / "var/lock/hybrid-knative.enabled").read_text()
    # the clone MicroK8s made is on the track's branch and passes its validation
    clone = Path(state["common"]) / "addons" / "hybrid-knative"
    assert (clone / ".git" / "HEAD").read_text().strip() == "ref: refs/heads/1.35"
    assert opts.repo_copy.stat().st_uid == os.geteuid()  # root under sudo: git trusts the clone source
    for title in ("Preflight", "Install MicroK8s (1.35/stable)", "Wait for MicroK8s to be ready",
                  "Register the addon repository hybrid-knative", "Enable hybrid-knative --knative 1.23",
                  "Verify: MicroK8s reports hybrid-knative enabled"):
        assert f"✓ {title}" in out, out
    assert "✗" not in out


def test_rerun_does_only_what_is_missing(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    opts = options(tmp_path, addon_repo)
    run(opts)
    before = len(fakes.calls)
    outcome, out = run(opts)
    assert outcome.installed_microk8s is False and outcome.added_repo is False and outcome.enabled is False
    # enable did not run: the URL comes from the Knative Service (`hybrid-knative status` prints none)
    assert outcome.url == "http://hello-default.hk.internal"
    new_calls = fakes.calls[before:]
    assert ["microk8s", "kubectl", "get", "ksvc", "hello", "-n", "default", "-o", "jsonpath={.status.url}"] in new_calls
    assert not [c for c in new_calls if any(m <= set(c) for m in MUTATING)], new_calls
    assert "✓ MicroK8s already installed (tracking 1.35/stable)" in out
    assert "✓ Addon repository hybrid-knative already registered" in out
    assert "✓ Addon hybrid-knative already enabled" in out


def test_microk8s_already_installed_other_track(fakes: Fakes, tmp_path: Path, addon_repo: Path,
                                                listener: int) -> None:
    fakes.update(microk8s={"channel": "1.33/stable"})
    # a busy port is fine when MicroK8s is installed: it is taken to be MicroK8s's own
    opts = options(tmp_path, addon_repo, channel=boot.Channel.parse("1.35/stable"), channel_given=True,
                   ports=(listener,))
    outcome, out = run(opts)
    assert outcome.installed_microk8s is False and outcome.track == "1.33"
    assert not [c for c in fakes.calls if c[:2] == ["snap", "install"]]
    assert "! MicroK8s follows 1.33/stable, not 1.35/stable" in out
    add = next(c for c in fakes.calls if c[1:4] == ["addons", "repo", "add"])
    assert add[-2:] == ["--reference", "1.33"]


def test_track_without_a_branch_uses_the_default_branch(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    fakes.update(microk8s={"channel": "1.29/stable"})
    run(options(tmp_path, addon_repo))
    add = next(c for c in fakes.calls if c[1:4] == ["addons", "repo", "add"])
    assert add[-2:] == ["--reference", "main"]


def test_repo_already_added(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    opts = options(tmp_path, addon_repo)
    fakes.update(microk8s={"channel": "1.35/stable"})
    common = Path(fakes.read()["common"]) / "addons"
    common.mkdir(parents=True)
    boot.refresh_copy(addon_repo, tmp_path / "elsewhere")
    subprocess.run(["git", "clone", "-q", "-b", "1.35", str(tmp_path / "elsewhere"), str(common / "hybrid-knative")],
                   check=True)
    outcome, _out = run(opts)
    assert outcome.added_repo is False and outcome.enabled is True
    assert not [c for c in fakes.calls if c[1:4] == ["addons", "repo", "add"]]
    assert not opts.repo_copy.exists()  # nothing copied when nothing is needed


def test_addon_already_enabled(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    opts = options(tmp_path, addon_repo)
    run(opts)
    fakes.update(enable_output="should not run")
    outcome, _ = run(opts)
    assert outcome.enabled is False
    assert sum(1 for c in fakes.calls if c[:2] == ["microk8s", "enable"]) == 1


def test_rerun_after_a_half_way_enable_repairs(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    """MicroK8s counts the addon enabled from the first change on ("incomplete" marker) and skips
    `microk8s enable`: bootstrap's re-run sees "incomplete" in `hybrid-knative status` and repairs."""
    opts = options(tmp_path, addon_repo, enable_args=("--knative", "1.23"))
    fakes.update(enable_fails=True)
    fail(opts, CommandError)
    assert fakes.read()["runs"] == ["enable"]
    fakes.update(enable_fails=False)
    outcome, out = run(opts)
    assert fakes.read()["runs"] == ["enable", "repair"] and fakes.read()["enable_args"] == ["--knative", "1.23"]
    assert outcome.enabled is True and outcome.url == "http://hello-default.hk.internal"
    assert "✓ Repair hybrid-knative: a previous enable stopped half-way" in out


def test_refresh_copy_follows_the_snap(tmp_path: Path, addon_repo: Path, build_snap: object) -> None:
    dest = tmp_path / "copy"
    assert boot.refresh_copy(addon_repo, dest) is True
    assert boot.refresh_copy(addon_repo, dest) is False
    newer = tmp_path / "newer"
    shutil.copytree(addon_repo, newer)
    (newer / ".git" / "refs" / "heads" / "1.35").write_text("0" * 40 + "\n")
    assert boot.refresh_copy(newer, dest) is True
    assert (dest / ".git" / "refs" / "heads" / "1.35").read_text().startswith("0" * 40)


# ------------------------------------------------------------------------------- the failures


def test_snap_install_failing(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    fakes.update(install_fails=True)
    err, out = fail(options(tmp_path, addon_repo), CommandError)
    assert "✗ Install MicroK8s (1.35/stable)" in out
    assert "Temporary failure in name resolution" in (err.details or "")
    assert "could not install MicroK8s from 1.35/stable" in (err.resolution or "")
    assert not [c for c in fakes.calls if c[0] == "microk8s"]


def test_microk8s_never_ready(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    fakes.update(ready=False)
    err, out = fail(options(tmp_path, addon_repo), DeadlineExceeded)
    assert err.brief == "MicroK8s did not become ready within 5s"
    assert "microk8s is not running" in (err.details or "")
    assert "microk8s inspect" in (err.resolution or "")
    assert "✗ Wait for MicroK8s to be ready" in out
    assert not [c for c in fakes.calls if c[:2] == ["microk8s", "enable"] or c[1:3] == ["addons", "repo"]]


def test_addon_not_found_with_exit_0_is_a_failure(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    # the repo is registered, but MicroK8s does not list the addon on this architecture:
    # `microk8s enable` then prints "not found" and exits 0
    fakes.update(arch="s390x")
    err, out = fail(options(tmp_path, addon_repo), PermanentError)
    assert err.brief == "MicroK8s does not know the addon hybrid-knative"
    assert "was not found in any repository" in (err.details or "")
    assert "✗ Enable hybrid-knative" in out


def test_enable_that_does_not_mark_enabled_fails_verification(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    fakes.update(enable_works=False)
    err, out = fail(options(tmp_path, addon_repo), PermanentError)
    assert err.brief == "MicroK8s reports hybrid-knative as disabled after enable"
    assert "✗ Verify: MicroK8s reports hybrid-knative enabled" in out


def test_snapd_not_running(fakes: Fakes, tmp_path: Path, addon_repo: Path) -> None:
    fakes.update(snapd="unavailable")
    err, _ = fail(options(tmp_path, addon_repo), PermanentError)
    assert err.brief == "snapd is not running" and "snapd.socket" in (err.resolution or "")


def test_busy_port_without_microk8s(fakes: Fakes, tmp_path: Path, addon_repo: Path, listener: int) -> None:
    err, out = fail(options(tmp_path, addon_repo, ports=(_free_port(), listener)), PermanentError)
    assert err.brief == f"port(s) {listener} already in use, and MicroK8s is not installed"
    assert "✗ Preflight" in out
    assert mutations(fakes) == []


@pytest.mark.parametrize(("override", "message"), [
    ({"machine": lambda: "riscv64"}, "unsupported architecture: riscv64"),
    ({"is_root": lambda: False}, "bootstrap must run as root"),
    ({"memory_bytes": lambda: 1 * GIB}, "not enough memory: 1.0 GiB"),
    ({"disk_free_bytes": lambda path: 2 * GIB}, "not enough free disk"),
])
def test_preflight_refuses_and_changes_nothing(fakes: Fakes, tmp_path: Path, addon_repo: Path,
                                               override: dict[str, object], message: str) -> None:
    opts = options(tmp_path, addon_repo)
    err, _out = fail(opts, HybridError, **override)
    assert message in err.brief
    assert err.resolution
    assert mutations(fakes) == []
    assert not opts.repo_copy.exists()


# ---------------------------------------------------------------------------- input validation


@pytest.mark.parametrize("text", ["1.35", "1.35/stable/", "1.35/foo", "stable", "1.35/stable/x/y", "v1.35/stable",
                                  "1.35/Stable", "../stable", "1.35/stable/BAD BRANCH", ""])
def test_bad_channel(text: str) -> None:
    with pytest.raises(ConfigError):
        boot.Channel.parse(text)


@pytest.mark.parametrize("text", ["1.35/stable", "latest/edge", "1.32/candidate", "1.36/beta/hotfix-1"])
def test_good_channel(text: str) -> None:
    assert str(boot.Channel.parse(text)) == text


def test_find_url() -> None:
    assert boot.find_url("x http://a.b/c.\nthen https://d.e/f") == "https://d.e/f"
    assert boot.find_url("nothing") is None


@pytest.fixture
def in_snap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, addon_repo: Path) -> Path:
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "addon-repo").symlink_to(addon_repo)
    monkeypatch.setenv("SNAP", str(snap))
    monkeypatch.setenv("SNAP_COMMON", str(tmp_path / "common"))
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["--channel", "1.35/nightly"], "unknown risk 'nightly'"),
    (["--channel", "banana"], "not a snap channel"),
    (["--no-such-flag"], "No such option '--no-such-flag'"),
    (["--knative", "one"], "not a Knative release"),
    (["--kubeconfig", "/etc/x"], "--kubeconfig cannot be used with bootstrap"),
    (["--knative", "1.23", "stray"], "unexpected extra argument (stray)"),
])
def test_cli_bad_input_changes_nothing(fakes: Fakes, in_snap: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["bootstrap", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert fakes.calls == []
    assert not (in_snap / "common").exists()


def test_cli_unsupported_arch(fakes: Fakes, in_snap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boot.platform, "machine", lambda: "ppc64le")
    result = CliRunner().invoke(cli, ["bootstrap"])
    assert result.exit_code == 2
    assert "Error: unsupported architecture: ppc64le" in result.output
    assert "amd64 (x86_64) and arm64 (aarch64)" in result.output
    assert mutations(fakes) == []


def test_cli_outside_the_snap_needs_addon_repo(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAP", raising=False)
    result = CliRunner().invoke(cli, ["bootstrap"])
    assert result.exit_code == 2
    assert "outside the hybrid-knative snap, bootstrap needs --addon-repo" in result.output


def test_cli_end_to_end(fakes: Fakes, in_snap: Path) -> None:
    # MicroK8s installed (so its ports 80/443/25000 may be busy on this machine without failing)
    fakes.update(microk8s={"channel": "1.34/stable"})
    result = CliRunner().invoke(cli, ["bootstrap", "--channel", "1.34/stable", "--knative", "1.23",
                                      "--ready-timeout", "7"])
    if result.exit_code != 0 and "not enough" in result.output:
        pytest.skip(f"this machine is too small for bootstrap's preflight: {result.output}")
    assert result.exit_code == 0, result.output
    assert "hybrid-knative is ready: http://hello-default.hk.internal" in result.output
    assert ["snap", "list", "microk8s"] in fakes.calls
    assert ["microk8s", "addons", "repo", "add", "hybrid-knative", str(in_snap / "common" / "addon-repo"),
            "--reference", "1.34"] in fakes.calls
    assert ["microk8s", "status", "--wait-ready", "--timeout", "7"] in fakes.calls
    assert fakes.read()["enable_args"] == ["--knative", "1.23"]
    assert (in_snap / "common" / "addon-repo" / ".git").is_dir()
