"""The one process runner. Nothing else in hybrid-knative spawns processes.

Wraps ``sh``: argv lists only (never a shell string), checked exit codes, timeouts, output kept
for error messages and shown on failure or with -v. ``direct=True`` runs the same argv straight
through ``subprocess`` instead: same checks, same errors, without ``sh``'s per-call cost (its command
lookup, pipe threads and result object add ≈100 ms a call on a loaded 2-core machine) — for hot
paths that spawn often, such as the join hub's ``microk8s add-node``.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

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
        import os

        base = dict(self.env) if self.env is not None else dict(os.environ)
        return dataclasses.replace(self, env={**base, **extra})

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        check: bool = True,
        timeout: float | None = None,
        input: str | bytes | None = None,
        cwd: Path | None = None,
        ok_codes: Sequence[int] = (0,),
        direct: bool = False,
        redact: bool = False,
    ) -> Result:
        """``redact``: the arguments hold a secret; the debug log and the errors name the command only."""
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
        try:
            proc = command(
                *args[1:],
                _return_cmd=True,
                _ok_code=list(range(256)),  # we check ourselves, keeping stderr
                _timeout=limit,
                _in=input,
                _decode_errors="replace",
                _env=dict(self.env) if self.env is not None else None,
                _cwd=str(cwd) if cwd is not None else None,
            )
        except sh.TimeoutException:
            raise TemporaryError(
                f"command timed out after {limit:g}s: {shown}",
                resolution="the command may be waiting on something slow; retry, or raise --timeout",
            ) from None
        except sh.SignalException as exc:
            raise CommandError(named, -int(getattr(exc, "exit_code", 1)),
                               stdout=_text(exc.stdout), stderr=_text(exc.stderr)) from None
        result = Result(tuple(args), int(proc.exit_code), _text(proc.stdout), _text(proc.stderr))
        if check and result.returncode not in ok_codes:
            raise CommandError(named, result.returncode, stdout=result.stdout, stderr=result.stderr)
        return result


    def _run_direct(self, args: list[str], *, check: bool, timeout: float | None, input: str | bytes | None,
                    cwd: Path | None, ok_codes: Sequence[int], shown: str, named: list[str]) -> Result:
        limit = self.default_timeout if timeout is None else timeout
        log.debug("run: %s", shown)
        data = input.encode("utf-8") if isinstance(input, str) else input
        try:
            proc = subprocess.run(  # an argv list, never a shell string
                args, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True, timeout=limit, env=dict(self.env) if self.env is not None else None,
                cwd=str(cwd) if cwd is not None else None, check=False)
        except FileNotFoundError:
            if cwd is not None and not cwd.is_dir():
                raise PermanentError(f"working directory not found: {cwd}") from None
            raise PermanentError(f"command not found: {args[0]}",
                                 resolution=f"install {args[0]} or check PATH") from None
        except PermissionError:
            raise PermanentError(f"command not executable: {args[0]}",
                                 resolution=f"check the permissions of {args[0]}") from None
        except subprocess.TimeoutExpired:
            raise TemporaryError(
                f"command timed out after {limit:g}s: {shown}",
                resolution="the command may be waiting on something slow; retry, or raise --timeout",
            ) from None
        result = Result(tuple(args), int(proc.returncode), _text(proc.stdout), _text(proc.stderr))
        if check and result.returncode not in ok_codes:
            raise CommandError(named, result.returncode, stdout=result.stdout, stderr=result.stderr)
        return result


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data) if data is not None else ""
