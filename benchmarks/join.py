"""`make bench` section: cluster-join figures on a namespaced LAN (printed, never asserted).

1. Enrolments per second and p50/p99 latency with N devices enrolling at once (TLS pinning + hub proof
   + enrolment + `microk8s add-node` through the fake CLI), for several N.
2. Time from agent start to the `microk8s join` command, including mDNS discovery, next to the same
   with the hk1: string (no discovery) as the baseline measured in the same run.
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

from tests.join.conftest import Proc, World, base_env  # noqa: E402
from tests.join.lan import Lan, available  # noqa: E402


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
        state = root / "hub"
        world.start_hub(state)
        print(f"{'devices':>7} {'enrol/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
        for n in (1, 10, 50):
            text = world.token(state, "--uses", str(n))
            out = subprocess.run(lan.cmd("dev2", [sys.executable, "-m", "tests.join.swarm", text, str(n), f"b{n}-"]),
                                 env=base_env(fake), cwd=REPO, capture_output=True, text=True, timeout=300)
            data = json.loads(out.stdout)
            lat = [r["seconds"] * 1000 for r in data["results"] if r["ok"]]
            failed = sum(1 for r in data["results"] if not r["ok"])
            print(f"{n:>7} {len(lat) / data['wall']:>8.1f} {statistics.median(lat):>8.1f} "
                  f"{_percentile(lat, 0.99):>8.1f} {failed:>6}")
        print(f"\n{'agent start → microk8s join':<34} {'seconds':>8}")
        for label, discover in (("hk1: string (baseline)", False), ("mDNS discovery", True)):
            text = world.token(state)
            node = f"bench-{'mdns' if discover else 'str'}"
            args = ["--discover", "--token", text.split(":", 1)[1].split("@")[0]] if discover else [text]
            start = time.perf_counter()
            result = world.device("join", node, *args)
            seconds = time.perf_counter() - start
            status = "" if result.returncode == 0 else f"  (failed: {result.stderr.strip()[-120:]})"
            print(f"{label:<34} {seconds:>8.2f}{status}")
    finally:
        for proc in reversed(procs):
            if proc.popen.stdin is not None:
                proc.popen.stdin.close()
            proc.stop()
        lan.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    bench_join()
