"""Retries and waits, driven by a fake clock: deterministic, no wall-clock assertions."""

from __future__ import annotations

import pytest

from hybrid_knative.errors import DeadlineExceeded, PermanentError, TemporaryError
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, timeout: float = 10.0) -> WaitPolicy:
    return WaitPolicy(timeout=timeout, interval=1.0, max_interval=4.0, clock=clock.clock, sleep=clock.sleep)


def test_retry_until_success_with_backoff() -> None:
    clock = FakeClock()
    attempts = iter([TemporaryError("busy"), TemporaryError("busy"), "ok"])

    def fn() -> str:
        item = next(attempts)
        if isinstance(item, Exception):
            raise item
        return item

    stats = WaitStats()
    assert retry(fn, policy=policy(clock), what="x", stats=stats) == "ok"
    assert clock.sleeps == [1.0, 2.0]
    assert stats.retries == 2


def test_retry_gives_up_at_deadline_naming_what() -> None:
    clock = FakeClock()

    def fn() -> None:
        raise TemporaryError("webhook not ready")

    with pytest.raises(DeadlineExceeded) as err:
        retry(fn, policy=policy(clock, timeout=5), what="patch ConfigMap x")
    assert "patch ConfigMap x" in err.value.brief
    assert "webhook not ready" in (err.value.details or "")
    assert clock.now <= 5


def test_retry_does_not_retry_permanent_errors() -> None:
    clock = FakeClock()
    calls = []

    def fn() -> None:
        calls.append(1)
        raise PermanentError("forbidden")

    with pytest.raises(PermanentError):
        retry(fn, policy=policy(clock), what="x")
    assert calls == [1]
    assert clock.sleeps == []


def test_wait_all_polls_pending_only_and_succeeds() -> None:
    clock = FakeClock()
    polls = {"a": 0, "b": 0}

    def make(name: str, ready_at: int):
        def check() -> str | None:
            polls[name] += 1
            return None if polls[name] >= ready_at else "not yet"
        return check

    stats = WaitStats()
    wait_all({"a": make("a", 1), "b": make("b", 3)}, policy=policy(clock), resolution="r", stats=stats)
    assert polls == {"a": 1, "b": 3}
    assert stats.waits == 1
    assert stats.polls == 4


def test_wait_all_deadline_names_every_pending_object() -> None:
    clock = FakeClock()
    with pytest.raises(DeadlineExceeded) as err:
        wait_all({"Deployment ns/a": lambda: None, "Deployment ns/b": lambda: "Available=False (X)"},
                 policy=policy(clock, timeout=6), resolution="look at pods")
    assert "Deployment ns/b" in err.value.brief
    assert "Deployment ns/a" not in err.value.brief
    assert "Available=False (X)" in (err.value.details or "")
    assert err.value.resolution == "look at pods"


def test_wait_all_treats_temporary_errors_as_not_ready() -> None:
    clock = FakeClock()
    answers = iter([TemporaryError("API busy"), None])

    def check() -> str | None:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    wait_all({"x": check}, policy=policy(clock), resolution="r")
    assert clock.sleeps == [1.0]
