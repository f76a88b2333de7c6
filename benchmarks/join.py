"""`make bench` section: cluster-join figures on a namespaced LAN (printed, never asserted).

1. Edge join, 50 devices at once: the latency of each device's whole enrolment (TLS pinning + hub
   proof + enrolment + its MicroK8s join token), p50 and p99 per trial, ≥ 5 trials, a FRESH hub for
   every trial (new state folder, new port: its join token pool filled at start, as on a running hub,
   nothing else warm). Configurations, run in rotation trial by trial so drifting load hits all alike:
   one device alone (the baseline), 50 devices with the default pool (64: sized for the burst), 50
   with a small pool (``--join-pool 16``), and 50 without a pool (``--join-pool 0``: an add-node per
   enrolment).
   The hub runs with its production poll interval (``--poll-interval 2``; the tests use 0.05 s, which
   would have 50 node watchers polling 20 times a second in the measured hub).
2. Time from agent start to the `microk8s join` command, including mDNS discovery, next to the same
   with the hk1: string (no discovery) as the baseline, alternating run by run.
Needs root and iproute2 (network namespaces); prints a note and skips otherwise.

    PYTHONPATH=src python3 benchmarks/join.py      (or `make bench`)
"""

from __future__ import annotations

import dataclasses
import json
import math
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

TRIALS = 5  # per configuration, a fresh hub each
TRIALS_DISCOVERY = 3
BURST = 50
HUB_ARGS = ("--poll-interval", "2")


@dataclasses.dataclass
class Config:
    label: str
    devices: int
    args: tuple[str, ...] = ()
    p50s: list[float] = dataclasses.field(default_factory=list)  # ms, one per trial
    p99s: list[float] = dataclasses.field(default_factory=list)
    rates: list[float] = dataclasses.field(default_factory=list)  # enrolments per second
    failed: int = 0


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 50 values is the 50th: the slowest device)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _trial(world: World, lan: Lan, root: Path, fake: Path, config: Config, trial: int, port: int) -> None:
    state = root / f"hub-{config.devices}-{'-'.join(config.args) or 'default'}-{trial}"
    hub = world.start_hub(state, port=port, extra=(*HUB_ARGS, *config.args))
    try:
        if config.args != ("--join-pool", "0"):
            hub.wait_for("join token pool ready", timeout=120)  # as on a hub that has been running a while
        text = world.token(state, "--uses", str(config.devices))
        out = subprocess.run(lan.cmd("dev2", [sys.executable, "-m", "tests.join.swarm", text, str(config.devices),
                                              f"b{port}-"]),
                             env=base_env(fake), cwd=REPO, capture_output=True, text=True, timeout=300)
        data = json.loads(out.stdout)
    finally:
        hub.stop()
        world.procs.remove(hub)
    lat = [r["seconds"] * 1000 for r in data["results"] if r["ok"]]
    config.failed += sum(1 for r in data["results"] if not r["ok"])
    if lat:
        config.rates.append(len(lat) / data["wall"])
        config.p50s.append(statistics.median(lat))
        config.p99s.append(_percentile(lat, 0.99))


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
        alone = Config("1 device alone (baseline)", 1)
        default = Config(f"{BURST} at once, default pool (64)", BURST)
        small = Config(f"{BURST} at once, --join-pool 16", BURST, ("--join-pool", "16"))
        no_pool = Config(f"{BURST} at once, --join-pool 0 (before)", BURST, ("--join-pool", "0"))
        configs = [alone, default, small, no_pool]
        port = 9443
        for trial in range(TRIALS):
            for config in configs[trial % len(configs):] + configs[:trial % len(configs)]:  # rotate the order
                port += 1
                _trial(world, lan, root, fake, config, trial, port)
        print(f"{'configuration':<36} {'trials':>6} {'enrol/s':>8} {'p50 ms [min–max]':>26} "
              f"{'p99 ms [min–max]':>26} {'failed':>6}")
        for config in configs:
            if not config.p99s:
                print(f"{config.label:<36} {TRIALS:>6} {'all failed':>8}")
                continue
            print(f"{config.label:<36} {len(config.p99s):>6} {statistics.median(config.rates):>8.1f} "
                  f"{Spread(tuple(config.p50s)).fmt(digits=0):>26} {Spread(tuple(config.p99s)).fmt(digits=0):>26} "
                  f"{config.failed:>6}")
        if alone.p50s:
            single = Spread(tuple(alone.p50s))
            for config in (default, small):
                if not config.p99s:
                    continue
                worst = Spread(tuple(config.p99s))
                goal(f"edge join, {BURST} devices at once ({config.label.split(', ', 1)[1]}): p99",
                     measured=f"{worst.fmt(digits=0)} ms", baseline=f"one device alone p50 {single.median:.0f} ms",
                     ratio=worst.median / single.median, goal="p99 < 1 s",
                     met=worst.median < 1000 and config.failed == 0)

        state = root / "hub-discovery"
        world.start_hub(state, port=port + 50)
        times: dict[bool, list[float]] = {False: [], True: []}
        failures: list[str] = []
        print(f"\n{'agent start → microk8s join (' + str(TRIALS_DISCOVERY) + ' paired runs)':<44} {'seconds':>26}")
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
