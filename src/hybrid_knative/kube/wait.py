"""Typed retries and real waits: one loop with a deadline, backoff, no bare sleeps elsewhere."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from hybrid_knative.errors import DeadlineExceeded, TemporaryError

T = TypeVar("T")

# A readiness check returns None when ready, else a short reason why not (shown on timeout).
Check = Callable[[], "str | None"]


@dataclasses.dataclass(frozen=True)
class WaitPolicy:
    timeout: float = 600.0
    interval: float = 1.0
    max_interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclasses.dataclass
class WaitStats:
    """Counts for benchmarks: how many sequential waits and polls a run needed."""

    waits: int = 0
    polls: int = 0
    retries: int = 0


def retry(fn: Callable[[], T], *, policy: WaitPolicy, what: str, stats: WaitStats | None = None) -> T:
    """Call ``fn`` until it stops raising TemporaryError, or the deadline passes."""
    deadline = policy.clock() + policy.timeout
    delay = policy.interval
    while True:
        try:
            return fn()
        except TemporaryError as exc:
            if policy.clock() + delay > deadline:
                raise DeadlineExceeded(
                    f"gave up after {policy.timeout:g}s: {what}",
                    details=str(exc),
                    resolution=exc.resolution or "check the cluster's health (`microk8s inspect`) and retry",
                ) from exc
            if stats is not None:
                stats.retries += 1
            policy.sleep(delay)
            delay = min(delay * 2, policy.max_interval)


def wait_all(
    checks: Mapping[str, Check],
    *,
    policy: WaitPolicy,
    resolution: str,
    stats: WaitStats | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> None:
    """Poll every check until all are ready, under ONE deadline.

    A check raising TemporaryError counts as "not ready yet" (the API was briefly unavailable).
    On timeout the error names every object that is still not ready, with its last reason.
    """
    if stats is not None:
        stats.waits += 1
    pending: dict[str, str] = {name: "not checked yet" for name in checks}
    deadline = policy.clock() + policy.timeout
    delay = policy.interval
    while True:
        for name in list(pending):
            if stats is not None:
                stats.polls += 1
            try:
                reason = checks[name]()
            except TemporaryError as exc:
                reason = exc.brief
            if reason is None:
                del pending[name]
            else:
                pending[name] = reason
        if not pending:
            return
        if on_progress is not None:
            on_progress(f"waiting for {len(pending)} of {len(checks)}: {next(iter(pending))}")
        if policy.clock() + delay > deadline:
            names = ", ".join(pending)
            details = "\n".join(f"{name}: {reason}" for name, reason in pending.items())
            raise DeadlineExceeded(
                f"not ready after {policy.timeout:g}s: {names}",
                details=details,
                resolution=resolution,
            )
        policy.sleep(delay)
        delay = min(delay * 2, policy.max_interval)
