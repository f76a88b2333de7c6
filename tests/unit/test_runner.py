"""The process runner, with real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.errors import CommandError, PermanentError, TemporaryError
from hybrid_knative.system.runner import Runner

# every test runs through sh and through the direct subprocess path: both behave the same
pytestmark = pytest.mark.parametrize("direct", [False, True], ids=["sh", "direct"])


def test_output_and_input(direct: bool) -> None:
    result = Runner().run(["cat"], input="hello", direct=direct)
    assert result.stdout == "hello"
    assert result.returncode == 0


def test_failure_keeps_argv_code_and_stderr(direct: bool) -> None:
    with pytest.raises(CommandError) as err:
        Runner().run(["sh", "-c", "echo boom >&2; exit 3"], direct=direct)
    assert err.value.returncode == 3
    assert err.value.argv == ["sh", "-c", "echo boom >&2; exit 3"]
    assert "boom" in err.value.stderr
    assert "boom" in (err.value.details or "")


def test_unchecked_and_ok_codes(direct: bool) -> None:
    assert Runner().run(["sh", "-c", "exit 4"], check=False, direct=direct).returncode == 4
    assert Runner().run(["sh", "-c", "exit 1"], ok_codes=(0, 1), direct=direct).returncode == 1


def test_timeout_is_temporary(direct: bool) -> None:
    with pytest.raises(TemporaryError, match="timed out"):
        Runner().run(["sleep", "10"], timeout=0.2, direct=direct)


def test_missing_command(direct: bool) -> None:
    with pytest.raises(PermanentError, match="command not found"):
        Runner().run(["/nonexistent/hk-tool"], direct=direct)


def test_arguments_are_never_shell_interpreted(tmp_path: Path, direct: bool) -> None:
    victim = tmp_path / "victim"
    result = Runner().run(["echo", f"; touch {victim}", "$(id)"], direct=direct)
    assert result.stdout.strip() == f"; touch {victim} $(id)"
    assert not victim.exists()


def test_env_and_cwd(tmp_path: Path, direct: bool) -> None:
    runner = Runner(env={"HK_X": "1", "PATH": "/usr/bin:/bin"})
    result = runner.run(["sh", "-c", "echo $HK_X; pwd"], cwd=tmp_path, direct=direct)
    assert result.stdout.split() == ["1", str(tmp_path)]


def test_signals_and_not_executable(tmp_path: Path, direct: bool) -> None:
    with pytest.raises(CommandError) as err:
        Runner().run(["sh", "-c", "kill -9 $$"], direct=direct)
    assert err.value.returncode != 0
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")  # not executable
    with pytest.raises(PermanentError):
        Runner().run([str(script)], direct=direct)


def test_redacted_arguments_stay_out_of_the_log(caplog: pytest.LogCaptureFixture, direct: bool) -> None:
    caplog.set_level("DEBUG", logger="hybrid_knative.system.runner")
    Runner().run(["echo", "s3cr3t-token"], direct=direct, redact=True)
    assert "s3cr3t-token" not in caplog.text and "echo" in caplog.text


def test_redacted_arguments_stay_out_of_errors(direct: bool) -> None:
    with pytest.raises(CommandError) as err:
        Runner().run(["sh", "-c", "exit 3", "s3cr3t-token"], direct=direct, redact=True)
    assert "s3cr3t-token" not in str(err.value) and "s3cr3t-token" not in err.value.argv
    with pytest.raises(TemporaryError) as late:
        Runner().run(["sh", "-c", "sleep 10", "s3cr3t-token"], timeout=0.2, direct=direct, redact=True)
    assert "s3cr3t-token" not in str(late.value)


def test_timeout_ends_the_commands_children_too(tmp_path: Path, direct: bool) -> None:
    """The command's whole process group is killed: no grandchild left holding the output pipe."""
    import os
    import time

    pidfile = tmp_path / "pid"
    with pytest.raises(TemporaryError, match="timed out"):
        Runner().run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5, direct=direct)
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
