#!/usr/bin/env python3
"""`make bench`: measured figures (printed, never asserted).

1. Render + plan time of the full Serving + Kourier stack per Knative release, next to a baseline
   measured in the same run: plain YAML parsing of the same upstream files.
2. API requests (reads / writes) and sequential waits for a fresh install and for a no-op re-run,
   against the in-process API emulator (real HTTP, real lightkube client).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness.emulator import ApiServer, FakeController  # noqa: E402
from tests.harness.knative import with_knative  # noqa: E402
from tests.integration.conftest import seed_microk8s  # noqa: E402

from hybrid_knative import addon  # noqa: E402
from hybrid_knative.catalog import load_catalog  # noqa: E402
from hybrid_knative.config import Config, KubeVersion  # noqa: E402
from hybrid_knative.progress import Status  # noqa: E402
from hybrid_knative.upstream import UpstreamStore  # noqa: E402

QUIET = Status(verbosity=-1)
REPEAT = 5
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUBE_FOR = {"1.20": "1.32", "1.21": "1.33", "1.23": "1.34"}


def median_seconds(fn: object, repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_render() -> None:
    print(f"## render + plan (median of {REPEAT} runs)")
    print(f"{'knative':<8} {'objects':>7} {'render ms':>10} {'yaml-only ms':>13} {'ratio':>6}")
    store = UpstreamStore()
    for release in load_catalog().releases:
        version = KubeVersion.parse(KUBE_FOR[release.line])
        config = Config(knative=release.line)
        _, rendered = addon.render(config, version, QUIET)
        count = sum(len(r.objects) for r in rendered)
        files = [release.component("knative-serving").file("serving-crds.yaml"),
                 release.component("knative-serving").file("serving-core.yaml"),
                 release.component("net-kourier").file("kourier.yaml")]
        texts = [store.read_text(f) for f in files]
        base = median_seconds(lambda texts=texts: [list(yaml.load_all(t, Loader=LOADER)) for t in texts])
        full = median_seconds(lambda config=config, version=version: addon.render(config, version, QUIET))
        print(f"{release.line:<8} {count:>7} {full * 1000:>10.1f} {base * 1000:>13.1f} {full / base:>6.2f}")


def bench_requests() -> None:
    print("\n## API requests and sequential waits (emulator, fake controller)")
    print(f"{'run':<18} {'requests':>8} {'reads':>6} {'writes':>6} {'waits':>6} {'polls':>6} {'vs fresh':>9}")
    with tempfile.TemporaryDirectory() as tmp, \
            ApiServer(version="1.34.2", controller=with_knative(FakeController())) as server:
        root = Path(tmp)
        seed_microk8s(server)  # the node, CoreDNS and kube-dns every MicroK8s cluster has
        kubeconfig = server.write_kubeconfig(root / "kubeconfig")
        (root / "host").mkdir()
        config = Config(kubeconfig=kubeconfig, state_dir=root / "state", marker=root / "marker",
                        poll_interval=0.001, wait_timeout=30, offline=True, verify=False, gpu="none",
                        host_root=root / "host")  # never touch this machine's DNS settings
        fresh_total = 0
        for label in ("fresh install", "no-op re-run"):
            server.reset_requests()
            outcome = addon.enable(config, QUIET)
            total = len(server.requests)
            writes = len(server.writes())
            fresh_total = fresh_total or total
            print(f"{label:<18} {total:>8} {total - writes:>6} {writes:>6} {outcome.stats.waits:>6} "
                  f"{outcome.stats.polls:>6} {total / fresh_total:>9.2f}")
        server.reset_requests()
        outcome = addon.disable(config, QUIET)
        total = len(server.requests)
        print(f"{'disable':<18} {total:>8} {total - len(server.writes()):>6} {len(server.writes()):>6} "
              f"{outcome.stats.waits:>6} {outcome.stats.polls:>6} {total / fresh_total:>9.2f}")


def bench_footprint() -> None:
    """Requests of the default install, computed from the rendered objects (HPA minReplicas counted)."""
    from hybrid_knative.install.profiles import footprint

    print("\n## footprint: sum of CPU / memory requests and pods (Knative 1.23, rendered objects)")
    print(f"{'install':<34} {'CPU':>6} {'GiB':>6} {'pods':>5} {'CPU vs upstream':>16}")
    upstream = (1.6, 1.25, 15)  # knative-notes.md: Serving + Kourier + Eventing + IMC + MT broker
    print(f"{'upstream defaults (release notes)':<34} {upstream[0]:>6.2f} {upstream[1]:>6.2f} {upstream[2]:>5} "
          f"{1.0:>16.2f}")
    for label, overrides in (("standard (default)", {}), ("edge (--profile edge)", {"profile": "edge"}),
                             ("standard --no-eventing", {"eventing": False}),
                             ("edge --no-eventing", {"profile": "edge", "eventing": False})):
        _, rendered = addon.render(Config(verify=False, **overrides), KubeVersion.parse("1.34"), QUIET)
        fp = footprint(o for r in rendered for o in r.objects)
        print(f"{label:<34} {fp.cpu_millis / 1000:>6.2f} {fp.memory_mib / 1024:>6.2f} {fp.pods:>5} "
              f"{fp.cpu_millis / 1000 / upstream[0]:>16.2f}")
    print("(each Knative service pod adds a 25m queue-proxy; requests only — limits are unchanged)")


if __name__ == "__main__":
    bench_render()
    bench_footprint()
    bench_requests()
    from benchmarks.join import bench_join

    bench_join()
    from benchmarks.airgap import bench_airgap

    bench_airgap()
    from benchmarks.functions import bench_functions

    bench_functions()
    from benchmarks.ros2 import bench_ros2

    bench_ros2()
    from benchmarks.clone import bench_clone

    bench_clone()
    from benchmarks.ml import bench_ml_footprint, bench_push_throughput

    bench_ml_footprint()
    bench_push_throughput()
