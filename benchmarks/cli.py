"""`make bench` section: start-up of the command line, next to `import click` in the same run.

Users wait for `hybrid-knative --help` and `hybrid-knative version`-like commands on every typo; the
goal (issue 13) is ≤ 3 × the time of a bare `python3 -c 'import click'` (the floor of any click CLI).
Runs alternate ours and the baseline (paired) so drifting load hits both alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stats import goal, paired  # noqa: E402

RUNS = 9


def _runner(argv: list[str]) -> object:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def run() -> None:
        subprocess.run(argv, check=True, capture_output=True, env=env, timeout=60)
    return run


def bench_cli() -> None:
    print(f"\n## command-line start-up (paired with `import click`, {RUNS} runs each)")
    baseline = _runner([sys.executable, "-c", "import click"])
    for label, args in (("--help", ["--help"]), ("enable --help", ["enable", "--help"]),
                        ("versions", ["versions"])):
        ours, base, ratio = paired(_runner([sys.executable, "-m", "hybrid_knative", *args]), baseline, RUNS)
        print(f"{'hybrid-knative ' + label:<34} {ours.fmt(1000)} ms   import click {base.fmt(1000)} ms   "
              f"ratio {ratio.fmt(digits=2)}")
        if label == "--help":
            goal("`hybrid-knative --help` start-up", measured=f"{ours.median * 1000:.0f} ms",
                 baseline=f"import click {base.median * 1000:.0f} ms", ratio=ratio.median,
                 goal="≤ 3x (and < 300 ms)", met=ratio.median <= 3.0 and ours.median < 0.3)


if __name__ == "__main__":
    bench_cli()
