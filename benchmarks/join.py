"""`make bench` section: cluster-join figures on a namespaced LAN (printed, never asserted).

1. Enrolments per second and p50/p99 latency with N devices enrolling at once (TLS pinning + hub proof
   + enrolment + `microk8s add-node` through the fake CLI), for several N, a fresh hub for every trial.
2. Time from agent start to the `microk8s join` command, including mDNS discovery, next to the same
   with the hk1: string (no discovery) as the baseline, alternating run by run.
Needs root and iproute2 (network namespaces); prints a note and skips otherwise.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stats import Spread, goal  # noqa: E402
from tests.join.conftest import Proc, World, base_env  # noqa: E402
from tests.join.lan import Lan, available  # noqa: E402

TRIALS_50 = 5  # fresh hub per trial
TRIALS_DISCOVERY = 3


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_join() -> None:
    print("\n## cluster join (network namespaces, real TLS + mDNS, fake microk8s CLI)")
    reason = available()
    if reason is not None:
        print(f"skipped: {reason}")
        return
    root = Path(tempfile.mkdtemp(prefix="hk-bench-join-"))
    fake = root / "microk8s"
    fake.mkdir()
    lan = Lan("hkbench")
    procs: list[Proc] = []
    try:
        lan.add_host("hub", 1)
        lan.add_host("dev1", 11)
        lan.add_host("dev2", 12)
        emu = Proc(lan.cmd("hub", [sys.executable, "-m", "tests.join.emuhost", str(fake)]), env=base_env(fake))
        procs.append(emu)
        emu.wait_for("ready", timeout=30)
        world = World(lan, root, fake, fake / "kubeconfig", procs)
        print(f"{'devices':>7} {'trials':>6} {'enrol/s (median)':>17} {'p50 ms':>8} {'p99 ms [min–max of trials]':>30} "
              f"{'failed':>6}")
        p99_at_50: list[float] = []
        alone: list[float] = []
        for n, trials in ((1, 3), (10, 3), (50, TRIALS_50)):
            rates: list[float] = []
            p50s: list[float] = []
            p99s: list[float] = []
            failed = 0
            for trial in range(trials):
                # a fresh hub (new state folder, new port) per trial: no warm caches or token pools from before
                state = root / f"hub-{n}-{trial}"
                port = 9443 + len(procs)
                hub = world.start_hub(state, port=port)
                try:
                    text = world.token(state, "--uses", str(n))
                    out = subprocess.run(lan.cmd("dev2", [sys.executable, "-m", "tests.join.swarm", text, str(n),
                                                          f"b{n}-{trial}-"]),
                                         env=base_env(fake), cwd=REPO, capture_output=True, text=True, timeout=300)
                    data = json.loads(out.stdout)
                finally:
                    hub.stop()
                    procs.remove(hub)
                lat = [r["seconds"] * 1000 for r in data["results"] if r["ok"]]
                failed += sum(1 for r in data["results"] if not r["ok"])
                if lat:
                    rates.append(len(lat) / data["wall"])
                    p50s.append(statistics.median(lat))
                    p99s.append(_percentile(lat, 0.99))
            if not p99s:
                print(f"{n:>7} {trials:>6} {'all failed':>17} {'':>8} {'':>30} {failed:>6}")
                continue
            spread = Spread(tuple(p99s))
            print(f"{n:>7} {trials:>6} {statistics.median(rates):>17.1f} {statistics.median(p50s):>8.1f} "
                  f"{spread.fmt():>30} {failed:>6}")
            if n == 50:
                p99_at_50 = p99s
            if n == 1:
                alone = p50s
        if p99_at_50 and alone:
            worst, single = Spread(tuple(p99_at_50)), Spread(tuple(alone))
            goal("edge join, 50 devices at once: p99", measured=f"{worst.fmt(digits=0)} ms",
                 baseline=f"one device alone p50 {single.median:.0f} ms", ratio=worst.median / single.median,
                 goal="p99 < 1 s", met=worst.median < 1000)

        print(f"\n{'agent start → microk8s join (' + str(TRIALS_DISCOVERY) + ' paired runs)':<44} {'seconds':>26}")
        state = root / "hub-discovery"
        hub = world.start_hub(state, port=9443 + len(procs) + 50)
        times: dict[bool, list[float]] = {False: [], True: []}
        failures: list[str] = []
        for trial in range(TRIALS_DISCOVERY):
            for discover in ((False, True) if trial % 2 == 0 else (True, False)):
                text = world.token(state)
                node = f"bench-{'mdns' if discover else 'str'}-{trial}"
                args = ["--discover", "--token", text.split(":", 1)[1].split("@")[0]] if discover else [text]
                start = time.perf_counter()
                result = world.device("join", node, *args)
                times[discover].append(time.perf_counter() - start)
                if result.returncode != 0:
                    failures.append(result.stderr.strip()[-120:])
        base, mdns = Spread(tuple(times[False])), Spread(tuple(times[True]))
        print(f"{'hk1: string (baseline)':<44} {base.fmt(digits=2):>26}")
        print(f"{'mDNS discovery':<44} {mdns.fmt(digits=2):>26}   ratio {mdns.median / base.median:.2f}x")
        for failure in failures:
            print(f"  (a join failed: {failure})")
    finally:
        for proc in reversed(procs):
            if proc.popen.stdin is not None:
                proc.popen.stdin.close()
            proc.stop()
        lan.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    bench_join()
