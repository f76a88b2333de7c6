"""Every command x every option (and argument) x hostile values: a clear error or success, never a traceback.

In-process (click's CliRunner), with PATH emptied (no external command can run: nothing is installed,
pulled or joined), HOME/state folders in a temporary directory, and a per-invocation alarm for the
commands that legitimately keep running on valid input (`hub start`). The count of tracebacks must be 0.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
import pytest
from click.testing import CliRunner

from hybrid_knative.cli.main import cli

ALARM_SECONDS = 8
REAL_SERVE = [False]


class Stop(BaseException):
    """Raised by the alarm: the command was still running (valid input, long-running command)."""


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)  # list/get_command: the lazy group loads its feature commands on request
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def hostile_values(tmp: Path) -> list[str]:
    binary = tmp / "binary.bin"
    binary.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(4096)) + b"\x00\xff\xfe")
    folder = tmp / "a-folder"
    folder.mkdir(exist_ok=True)
    return ["A" * 100_000, "/dev/null", "/dev/zero", str(binary), str(folder), "nan", "inf", "-inf", "-1", "0",
            "١٢", "²", "", " ", "-", "\x00", "../../../../etc/passwd", "1e400", "9" * 400, "☃:x=y,\u202e"]


def base_args(path: tuple[str, ...], tmp: Path, param: str | None) -> list[str]:
    """What gets each command past its required options (overridden by the option under test). `plan` renders
    (seconds) only when its output options are under test; otherwise it stops at the missing cluster."""
    if path == ("plan",) and param in ("output", "kubernetes_version"):
        return ["-o", str(tmp / "plan"), "--kubernetes-version", "1.34"]
    return {
        ("plan",): ["-o", str(tmp / "plan")],
        ("hub", "start"): ["--listen", "127.0.0.1", "--port", "0", "--advertise", "127.0.0.1", "--no-mdns",
                           "--state-dir", str(tmp / "hub")],
        ("bundle", "create"): ["-o", str(tmp / "out.bundle")],
        ("bundle", "keygen"): ["-o", str(tmp / "k" / "key")],
        ("token", "create"): ["--hub", "127.0.0.1:9"],
    }.get(path, [])


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Stop


@pytest.fixture
def quick_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hub start` with valid options serves until a signal: start the real server, close it, stop."""
    from hybrid_knative.join import hub

    real = hub.serve

    def serve_once(h: hub.Hub) -> hub.RunningHub:
        if REAL_SERVE[0]:  # binding is what --listen/--port change: really listen, then stop
            real(h).close()
        raise Stop

    monkeypatch.setattr(hub, "serve", serve_once)


@pytest.mark.usefixtures("quick_hub")
def test_no_option_value_ever_ends_in_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths ("-", "../..") land in the test's folder
    values = hostile_values(tmp_path)
    env = {"PATH": str(tmp_path / "no-bin"), "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "HYBRID_KNATIVE_HUB_DIR": str(tmp_path / "hub"), "HYBRID_KNATIVE_ENROLMENT_FILE": None,
           "HYBRID_KNATIVE_TRUSTED_KEYS": None, "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
           "SNAP": None, "SNAP_DATA": None, "SNAP_COMMON": None}
    runner = CliRunner(env=env)
    previous = signal.signal(signal.SIGALRM, _alarm)
    tracebacks: list[str] = []
    runs = 0
    try:
        for path, cmd in leaves(cli):  # type: ignore[arg-type]
            for param in cmd.params:
                if isinstance(param, click.Option) and (param.is_flag or param.count or "--help" in param.opts):
                    continue
                base = base_args(path, tmp_path, param.name)
                REAL_SERVE[0] = param.name in ("listen", "port")
                for value in values:
                    if isinstance(param, click.Argument):
                        args = [*path, *base, "--", value] if param.nargs == 1 else [*path, *base, value]
                    else:
                        args = [*path, *base, param.opts[0], value]
                    runs += 1
                    signal.alarm(ALARM_SECONDS)
                    try:
                        result = runner.invoke(cli, args)
                    except Stop:
                        continue  # still running on a valid value: not a traceback
                    finally:
                        signal.alarm(0)
                    if (result.exception is not None and not isinstance(result.exception, SystemExit)) \
                            or "Traceback" in result.output:
                        tracebacks.append(f"{' '.join(path)} {param.opts[0] if param.opts else param.name}="
                                          f"{value[:30]!r}: {result.exception!r}")
                    elif result.exit_code not in (0, 1, 2, 3):
                        tracebacks.append(f"{' '.join(path)} {param.name}={value[:30]!r}: exit {result.exit_code}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert runs > 2000
    assert tracebacks == [], f"{len(tracebacks)} tracebacks in {runs} runs:\n" + "\n".join(tracebacks[:40])


@pytest.mark.parametrize("args", [
    ["hub", "start", "--rate", "nan"], ["hub", "start", "--node-timeout", "nan"],
    ["hub", "start", "--poll-interval", "nan"], ["join", "--timeout", "nan"], ["agent", "--timeout", "inf"],
    ["status", "--timeout", "nan"], ["enable", "--poll-interval", "nan"],
])
def test_non_finite_numbers_are_refused(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
