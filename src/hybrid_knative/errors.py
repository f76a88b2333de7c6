"""Typed errors: every error says what happened, the details, and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence


class HybridError(Exception):
    """An error the user can act on.

    ``brief`` is one line; ``details`` is evidence (command output, object names); ``resolution``
    says what to do next. ``exit_code`` is what the CLI exits with.
    """

    exit_code = 1

    def __init__(self, brief: str, *, details: str | None = None, resolution: str | None = None) -> None:
        super().__init__(brief)
        self.brief = brief
        self.details = details
        self.resolution = resolution

    def __str__(self) -> str:
        parts = [self.brief]
        if self.details:
            parts.append(self.details)
        if self.resolution:
            parts.append(f"Resolution: {self.resolution}")
        return "\n".join(parts)


class ConfigError(HybridError):
    """Bad user input; nothing was touched."""

    exit_code = 2


class PermanentError(HybridError):
    """Retrying will not help."""


class TemporaryError(HybridError):
    """May succeed when retried (API server busy, object not ready yet)."""


class DeadlineExceeded(PermanentError):
    """A wait ran out of time."""


class IntegrityError(PermanentError):
    """A file's checksum does not match what the project pins."""


class CommandError(PermanentError):
    """An external command failed; keeps argv, exit code and stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        *,
        stdout: str = "",
        stderr: str = "",
        resolution: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = (stderr or stdout).strip().splitlines()[-20:]
        super().__init__(
            f"command failed with exit code {returncode}: {' '.join(self.argv)}",
            details="\n".join(tail) or None,
            resolution=resolution,
        )
