"""The one process runner. Nothing else in hybrid-knative spawns processes.

Wraps ``sh``: argv lists only (never a shell string), checked exit codes, timeouts, output kept
for error messages and shown on failure or with -v. ``direct=True`` runs the same argv straight
through ``subprocess`` instead: same checks, same errors, without ``sh``'s per-call cost (its command
lookup, pipe threads and result object add ≈100 ms a call on a loaded 2-core machine) — for hot
paths that spawn often, such as the join hub's ``microk8s add-node``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import sh

from hybrid_knative.errors import CommandError, PermanentError, TemporaryError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclasses.dataclass(frozen=True)
class Runner:
    """Runs commands. ``env`` replaces the environment when given (no secrets in argv, please)."""

    env: Mapping[str, str] | None = None
    default_timeout: float = 300.0

    def with_env(self, extra: Mapping[str, str]) -> Runner:
        """A runner whose children also get ``extra`` (on top of this runner's or this process's env)."""
        base = dict(self.env) if self.env is not None else dict(os.environ)
        return dataclasses.replace(self, env={**base, **extra})

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        check: bool = True,
        timeout: float | None = None,
        input: str | bytes | IO[bytes] | None = None,
        cwd: Path | None = None,
        ok_codes: Sequence[int] = (0,),
        direct: bool = False,
        redact: bool = False,
    ) -> Result:
        """``input``: text or bytes for stdin, or an open file/pipe the child reads directly (its fd is
        handed over: nothing passes through this process). ``redact``: the arguments hold a secret; the
        debug log and the errors name the command only."""
        args = [str(a) for a in argv]
        if not args:
            raise PermanentError("internal error: empty command")
        shown = f"{args[0]} … ({len(args) - 1} arguments withheld)" if redact else " ".join(args)
        named = [args[0], "(arguments withheld)"] if redact else args  # what errors carry
        if direct:
            return self._run_direct(args, check=check, timeout=timeout, input=input, cwd=cwd, ok_codes=ok_codes,
                                    shown=shown, named=named)
        try:
            command = sh.Command(args[0])
        except sh.CommandNotFound:
            raise PermanentError(
                f"command not found: {args[0]}",
                resolution=f"install {args[0]} or check PATH",
            ) from None
        limit = self.default_timeout if timeout is None else timeout
        log.debug("run: %s", shown)
        # The timeout is a timer of ours that kills the child's process group: sh's own ``_timeout`` polls
        # in 0.1 s steps and so adds up to 0.1 s to EVERY command (~90 ms measured per `skopeo copy`).
        timed_out = threading.Event()
        timer = None
        try:
            proc = command(
                *args[1:],
                _bg=True,
                _bg_exc=False,
                _new_group=True,  # a timeout or Ctrl-C ends the command's own children too
                _return_cmd=True,
                _ok_code=list(range(256)),  # we check ourselves, keeping stderr
                _in=input,
                _decode_errors="replace",
                _env=dict(self.env) if self.env is not None else None,
                _cwd=str(cwd) if cwd is not None else None,
            )
            timer = threading.Timer(limit, _kill, (proc, timed_out))
            timer.daemon = True
            timer.start()
            try:
                proc.wait()
            except BaseException as exc:
                if not isinstance(exc, sh.SignalException):  # Ctrl-C, …: leave nothing running behind us
                    _kill(proc, threading.Event())
                raise
        except sh.SignalException as exc:
            if timed_out.is_set():
                raise TemporaryError(
                    f"command timed out after {limit:g}s: {shown}",
                    resolution="the command may be waiting on something slow; retry, or raise --timeout",
                ) from None
            raise CommandError(named, -int(getattr(exc, "exit_code", 1)),
                               stdout=_text(exc.stdout), stderr=_text(exc.stderr)) from None
        finally:
            if timer is not None:
                timer.cancel()
        result = Result(tuple(args), int(proc.exit_code), _text(proc.stdout), _text(proc.stderr))
        if check and result.returncode not in ok_codes:
            raise CommandError(named, result.returncode, stdout=result.stdout, stderr=result.stderr)
        return result

    def _run_direct(self, args: list[str], *, check: bool, timeout: float | None,
                    input: str | bytes | IO[bytes] | None,
                    cwd: Path | None, ok_codes: Sequence[int], shown: str, named: list[str]) -> Result:
        limit = self.default_timeout if timeout is None else timeout
        log.debug("run: %s", shown)
        data = input.encode("utf-8") if isinstance(input, str) else input if isinstance(input, bytes) else None
        stdin: Any = subprocess.PIPE if data is not None else input if input is not None else subprocess.DEVNULL
        # its own process group, like the sh path: a timeout or Ctrl-C ends the command's children too
        group: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        try:
            proc = subprocess.Popen(  # an argv list, never a shell string
                args, stdin=stdin, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=dict(self.env) if self.env is not None else None,
                cwd=str(cwd) if cwd is not None else None, **group)
        except FileNotFoundError:
            if cwd is not None and not cwd.is_dir():
                raise PermanentError(f"working directory not found: {cwd}") from None
            raise PermanentError(f"command not found: {args[0]}",
                                 resolution=f"install {args[0]} or check PATH") from None
        except PermissionError:
            raise PermanentError(f"command not executable: {args[0]}",
                                 resolution=f"check the permissions of {args[0]}") from None
        try:
            out, err = proc.communicate(data, timeout=limit)
        except BaseException as exc:
            with contextlib.suppress(OSError):  # already gone
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise TemporaryError(
                    f"command timed out after {limit:g}s: {shown}",
                    resolution="the command may be waiting on something slow; retry, or raise --timeout",
                ) from None
            raise
        proc_rc = proc.returncode
        result = Result(tuple(args), int(proc_rc), _text(out), _text(err))
        if check and result.returncode not in ok_codes:
            raise CommandError(named, result.returncode, stdout=result.stdout, stderr=result.stderr)
        return result


def _kill(proc: Any, flag: threading.Event) -> None:
    flag.set()
    with contextlib.suppress(OSError, AttributeError):  # already gone
        proc.process.signal_group(signal.SIGKILL)


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data) if data is not None else ""
