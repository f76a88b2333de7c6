"""Shared figures for `make bench`: runs, spread and goals, printed the same way by every section.

Every figure is measured in the same run as its baseline. A goal is a ratio (ours / baseline) or a
count, never a wall-clock threshold checked in a test: `make bench` prints whether each goal is met,
and `goals()` collects them for the summary table at the end.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Spread:
    """min / median / max of ``runs`` measurements."""

    values: tuple[float, ...]

    @property
    def runs(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def fmt(self, scale: float = 1.0, digits: int = 1) -> str:
        return (f"{self.median * scale:.{digits}f} "
                f"[{self.low * scale:.{digits}f}–{self.high * scale:.{digits}f}, n={self.runs}]")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], object], runs: int) -> Spread:
    return Spread(tuple(timed(fn) for _ in range(runs)))


def paired(ours: Callable[[], object], baseline: Callable[[], object], runs: int) -> tuple[Spread, Spread, Spread]:
    """Alternate baseline and ours, ``runs`` times each, so drifting load hits both alike.

    Returns (ours, baseline, per-pair ratio ours/baseline)."""
    a: list[float] = []
    b: list[float] = []
    for index in range(runs):
        order = (baseline, ours) if index % 2 == 0 else (ours, baseline)
        for fn in order:
            (b if fn is baseline else a).append(timed(fn))
    ratios = tuple(x / y for x, y in zip(a, b, strict=True) if y > 0)
    return Spread(tuple(a)), Spread(tuple(b)), Spread(ratios)


@dataclasses.dataclass(frozen=True)
class Goal:
    what: str
    measured: str  # the figure with its spread, human-readable
    baseline: str
    ratio: float | None  # ours / baseline (None for counts)
    goal: str
    met: bool


_GOALS: list[Goal] = []


def goal(what: str, *, measured: str, baseline: str, ratio: float | None, goal: str, met: bool) -> Goal:
    g = Goal(what, measured, baseline, ratio, goal, met)
    _GOALS.append(g)
    mark = "met" if met else "NOT met"
    ratio_text = f"{ratio:.2f}x" if ratio is not None else "-"
    print(f"  goal {what}: {measured} vs {baseline} → ratio {ratio_text} (goal {goal}): {mark}")
    return g


def goals() -> Sequence[Goal]:
    return tuple(_GOALS)


def summary() -> None:
    if not _GOALS:
        return
    print("\n## goals")
    width = max(len(g.what) for g in _GOALS)
    print(f"{'goal'.ljust(width)}  {'ratio':>7}  {'target':<22}  status  measured (median [min–max, runs]) vs baseline")
    for g in _GOALS:
        ratio = f"{g.ratio:.2f}x" if g.ratio is not None else "-"
        print(f"{g.what.ljust(width)}  {ratio:>7}  {g.goal:<22}  {'met' if g.met else 'NOT':<6}  "
              f"{g.measured} vs {g.baseline}")
