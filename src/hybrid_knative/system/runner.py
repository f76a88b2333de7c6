"""The one process runner. Nothing else in hybrid-knative spawns processes.

Wraps ``sh``: argv lists only (never a shell string), checked exit codes, timeouts, output kept
for error messages and shown on failure or with -v.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

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
        input: str | bytes | IO[bytes] | None = None,
        cwd: Path | None = None,
        ok_codes: Sequence[int] = (0,),
    ) -> Result:
        """``input``: text or bytes for stdin, or an open file/pipe the child reads directly (its fd is
        handed over: nothing passes through this process)."""
        args = [str(a) for a in argv]
        if not args:
            raise PermanentError("internal error: empty command")
        try:
            command = sh.Command(args[0])
        except sh.CommandNotFound:
            raise PermanentError(
                f"command not found: {args[0]}",
                resolution=f"install {args[0]} or check PATH",
            ) from None
        limit = self.default_timeout if timeout is None else timeout
        log.debug("run: %s", " ".join(args))
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
                f"command timed out after {limit:g}s: {' '.join(args)}",
                resolution="the command may be waiting on something slow; retry, or raise --timeout",
            ) from None
        except sh.SignalException as exc:
            raise CommandError(args, -int(getattr(exc, "exit_code", 1)),
                               stdout=_text(exc.stdout), stderr=_text(exc.stderr)) from None
        result = Result(tuple(args), int(proc.exit_code), _text(proc.stdout), _text(proc.stderr))
        if check and result.returncode not in ok_codes:
            raise CommandError(args, result.returncode, stdout=result.stdout, stderr=result.stderr)
        return result


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data) if data is not None else ""
