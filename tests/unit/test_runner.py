"""The process runner, with real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.errors import CommandError, PermanentError, TemporaryError
from hybrid_knative.system.runner import Runner


def test_output_and_input() -> None:
    result = Runner().run(["cat"], input="hello")
    assert result.stdout == "hello"
    assert result.returncode == 0


def test_failure_keeps_argv_code_and_stderr() -> None:
    with pytest.raises(CommandError) as err:
        Runner().run(["sh", "-c", "echo boom >&2; exit 3"])
    assert err.value.returncode == 3
    assert err.value.argv == ["sh", "-c", "echo boom >&2; exit 3"]
    assert "boom" in err.value.stderr
    assert "boom" in (err.value.details or "")


def test_unchecked_and_ok_codes() -> None:
    assert Runner().run(["sh", "-c", "exit 4"], check=False).returncode == 4
    assert Runner().run(["sh", "-c", "exit 1"], ok_codes=(0, 1)).returncode == 1


def test_timeout_is_temporary() -> None:
    with pytest.raises(TemporaryError, match="timed out"):
        Runner().run(["sleep", "10"], timeout=0.2)


def test_missing_command() -> None:
    with pytest.raises(PermanentError, match="command not found"):
        Runner().run(["/nonexistent/hk-tool"])


def test_arguments_are_never_shell_interpreted(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    result = Runner().run(["echo", f"; touch {victim}", "$(id)"])
    assert result.stdout.strip() == f"; touch {victim} $(id)"
    assert not victim.exists()


def test_env_and_cwd(tmp_path: Path) -> None:
    result = Runner(env={"HK_X": "1", "PATH": "/usr/bin:/bin"}).run(["sh", "-c", "echo $HK_X; pwd"], cwd=tmp_path)
    assert result.stdout.split() == ["1", str(tmp_path)]



def test_timeout_ends_the_commands_children_too(tmp_path: Path) -> None:
    """The command's whole process group is killed: no grandchild left holding the output pipe."""
    import os
    import time

    pidfile = tmp_path / "pid"
    with pytest.raises(TemporaryError, match="timed out"):
        Runner().run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)
    pid = int(pidfile.read_text())
    for _ in range(100):  # bounded: the orphan is reaped by init shortly after the kill
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the command's child survived the timeout")
