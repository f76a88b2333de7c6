#!/usr/bin/env python3
"""`make bench`: measured figures (printed, never asserted), each next to a baseline measured in the same run.

1. Render and plan of the full default install per Knative release (cold: nothing parsed yet in this
   process), paired with plain YAML parsing of exactly the upstream files the render opened (the store
   logs them) with the same C loader.
2. Footprint: CPU/memory requests and pods of the rendered install, next to the same figures computed from
   the vendored upstream files as released (no constant).
3. API requests, writes, sequential waits and polls of a fresh enable, a no-op re-run and a disable with
   default flags (verify on: a real DNS server and HTTP gateway on 127.0.0.1 answer the smoke URL),
   against the API emulator (real HTTP, real lightkube client); a fresh enable with Eventing installed beside
   Serving (the default) paired with one in order (--no-overlap), Deployments Available only after a few polls.
4. The other sections: command-line start-up (benchmarks/cli.py), edge join (join.py), bundle import
   (airgap.py), and any `bench_*` in benchmarks/*.py modules other branches add (see SECTIONS).

Every timing prints median [min–max, runs]; the goals of issue 13 are summed up at the end. Runs are
bounded (BENCH_RUNS, default 5) so that the whole `make bench` stays under 10 minutes on 2 cores.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from benchmarks.stats import Spread, goal, paired, summary  # noqa: E402

from hybrid_knative import addon  # noqa: E402
from hybrid_knative.catalog import UpstreamFile, load_catalog  # noqa: E402
from hybrid_knative.config import Config, KubeVersion  # noqa: E402
from hybrid_knative.install.plan import plan, render_plan  # noqa: E402
from hybrid_knative.install.preflight import render_context  # noqa: E402
from hybrid_knative.manifests import load as manifests_load  # noqa: E402
from hybrid_knative.progress import Status  # noqa: E402

QUIET = Status(verbosity=-1)
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUBE_FOR = {"1.20": "1.32", "1.21": "1.33", "1.23": "1.34"}
# benchmarks/<module>.py: bench_<name>() — run in this order after the sections above; a module that
# is not there (yet) is skipped with a note. Other branches add their line here.
SECTIONS = [("cli", "bench_cli"), ("join", "bench_join"), ("airgap", "bench_airgap"), ("functions", "bench_functions"),
            ("ros2", "bench_ros2"), ("clone", "bench_clone"), ("ml", "bench_ml_footprint"),
            ("ml", "bench_push_throughput")]


def newest() -> object:
    return max(load_catalog().releases, key=lambda r: tuple(int(p) for p in r.line.split(".")))


def files_render_opens(config: Config, version: KubeVersion) -> list[UpstreamFile]:
    """The upstream files a render of ``config`` opens, each once, in order (the store logs them)."""
    manifests_load.clear_parsed()
    rc = render_context(config, version, QUIET)
    render_plan(plan(config, rc.host), rc)
    seen: dict[str, UpstreamFile] = {}
    for f in rc.store.opened:
        seen.setdefault(f.path, f)
    return list(seen.values())


def parse_files(texts: list[str]) -> Callable[[], object]:
    def parse() -> object:
        return [list(yaml.load_all(t, Loader=LOADER)) for t in texts]
    return parse


def bench_render() -> None:
    print(f"\n## render and plan, cold (paired with parsing the same upstream files; {max(RUNS, 9)} runs each for "
          f"the newest release, {RUNS} for the others)")
    print(f"{'knative':<8} {'files':>5} {'objects':>7}  {'render ms':<24} {'plan ms':<24} {'parse-only ms':<24} "
          f"{'render/parse':<20} plan/parse")
    from hybrid_knative.upstream import UpstreamStore

    store = UpstreamStore()
    for release in load_catalog().releases:
        version = KubeVersion.parse(KUBE_FOR.get(release.line, "1.34"))
        config = Config(knative=release.line)
        files = files_render_opens(config, version)
        texts = [store.read_text(f) for f in files]
        _, rendered = addon.render(config, version, QUIET)
        count = sum(len(r.objects) for r in rendered)

        def render(config: Config = config, version: KubeVersion = version) -> None:
            manifests_load.clear_parsed()  # a fresh process: every file parsed once
            addon.render(config, version, QUIET)

        with tempfile.TemporaryDirectory() as tmp:
            def write_plan(config: Config = config, version: KubeVersion = version, tmp: str = tmp) -> None:
                manifests_load.clear_parsed()
                addon.write_plan(config, version, Path(tmp) / "plan", QUIET)

            runs = max(RUNS, 9) if release is newest() else RUNS  # the goal's figures: more pairs, less noise
            ours, base, ratio = paired(render, parse_files(texts), runs)
            plan_t, plan_base, plan_ratio = paired(write_plan, parse_files(texts), runs)
        print(f"{release.line:<8} {len(files):>5} {count:>7}  {ours.fmt(1000):<24} {plan_t.fmt(1000):<24} "
              f"{base.fmt(1000):<24} {ratio.fmt(digits=2):<20} {plan_ratio.fmt(digits=2)}")
        if release is newest():
            goal(f"full plan (Knative {release.line}, {len(files)} files)", measured=f"{plan_t.fmt(1000, 0)} ms",
                 baseline=f"parsing the same {len(files)} files {plan_base.median * 1000:.0f} ms",
                 ratio=plan_ratio.median, goal="≤ 1.2x (and < 2 s)",
                 met=plan_ratio.median <= 1.2 and plan_t.median < 2.0)
            goal(f"render (Knative {release.line})", measured=f"{ours.fmt(1000, 0)} ms",
                 baseline=f"parsing the same files {base.median * 1000:.0f} ms", ratio=ratio.median,
                 goal="≤ 1.2x", met=ratio.median <= 1.2)


def bench_footprint() -> None:
    """Requests of the steady-state pods (HPA minReplicas counted), ours vs the upstream files as released."""
    from hybrid_knative.install.profiles import footprint
    from hybrid_knative.manifests import load_documents
    from hybrid_knative.upstream import UpstreamStore

    version = KubeVersion.parse("1.34")
    store = UpstreamStore()
    print("\n## footprint: CPU / memory requests and pods of the install (Knative for Kubernetes 1.34, rendered "
          "objects vs the vendored upstream files)")
    print(f"{'install':<28} {'CPU':>6} {'GiB':>6} {'pods':>5}  {'upstream files as released':<32} {'CPU ratio':>9}")
    for label, overrides in (("standard (default)", {}), ("edge (--profile edge)", {"profile": "edge"}),
                             ("standard --no-eventing", {"eventing": False}),
                             ("edge --no-eventing", {"profile": "edge", "eventing": False})):
        config = Config(verify=False, **overrides)  # type: ignore[arg-type]
        _, rendered = addon.render(config, version, QUIET)
        fp = footprint(o for r in rendered for o in r.objects)
        files = files_render_opens(config, version)
        raw = [o for f in files for o in load_documents(store.read_text(f), source=f.path)]
        up = footprint(raw)
        print(f"{label:<28} {fp.cpu_millis / 1000:>6.2f} {fp.memory_mib / 1024:>6.2f} {fp.pods:>5}  "
              f"{up.cpu_millis / 1000:>6.2f} CPU {up.memory_mib / 1024:>5.2f} GiB {up.pods:>3} pods   "
              f"{fp.cpu_millis / max(up.cpu_millis, 1):>9.2f}")
    print("(the baseline sums the same upstream files without our transforms; each Knative service pod adds a "
          "25m queue-proxy; requests only — limits are unchanged)")


def bench_requests() -> None:
    from tests.harness.emulator import ApiServer, FakeController
    from tests.harness.knative import with_knative
    from tests.harness.netfixtures import dns_server, http_gateway, probes_for
    from tests.integration.conftest import seed_microk8s

    from hybrid_knative.smoke import smoke_data

    print("\n## API requests, writes and sequential waits (emulator + fake controller, default flags: verify on)")
    print(f"{'run':<16} {'requests':>8} {'reads':>6} {'writes':>6} {'dup GETs':>8} {'waits':>6} {'polls':>6} "
          f"{'vs fresh':>9} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp, \
            ApiServer(version="1.34.2", controller=with_knative(FakeController())) as server, \
            dns_server("hk.internal") as (dns, _), http_gateway() as (port, gateway):
        gateway.routes["hello-default.hk.internal"] = (200, smoke_data().marker + "\n")
        root = Path(tmp)
        seed_microk8s(server)  # the node, CoreDNS and kube-dns every MicroK8s cluster has
        kubeconfig = server.write_kubeconfig(root / "kubeconfig")
        (root / "host").mkdir()
        # default flags (verify on, eventing on); only what this machine cannot be: no GPU, a temporary host
        # root (never this machine's DNS settings), fast polls (the fake controller is instant)
        config = Config(kubeconfig=kubeconfig, state_dir=root / "state", marker=root / "marker",
                        poll_interval=0.001, wait_timeout=60, offline=True, gpu="none", host_root=root / "host")
        fresh_total = 0
        figures: dict[str, tuple[int, int]] = {}
        for label in ("fresh enable", "no-op re-run", "disable"):
            server.reset_requests()
            start = time.perf_counter()
            if label == "disable":
                outcome = addon.disable(config, QUIET)
            else:
                outcome = addon.enable(config, QUIET, probes=probes_for(dns, port))
            seconds = time.perf_counter() - start
            total, writes = len(server.requests), len(server.writes())
            gets = [(r.path, r.query) for r in server.requests if r.method == "GET"]
            dups = len(gets) - len(set(gets))
            fresh_total = fresh_total or total
            figures[label] = (total, writes)
            print(f"{label:<16} {total:>8} {total - writes:>6} {writes:>6} {dups:>8} {outcome.stats.waits:>6} "
                  f"{outcome.stats.polls:>6} {total / fresh_total:>9.2f} {seconds:>8.1f}")
        total, writes = figures["no-op re-run"]
        goal("no-op re-run of enable (default flags)", measured=f"{writes} writes, {total} requests",
             baseline=f"fresh enable {figures['fresh enable'][0]} requests", ratio=None,
             goal="0 writes, ≤ 40 requests", met=writes == 0 and total <= 40)
    print("(waits = sequential waits, polls = readiness checks; a poll after a sleep asks the server, the first one "
          "may be answered by the LIST that found the unchanged objects)")


def bench_overlap() -> None:
    """Fresh enable, Eventing beside Serving + Kourier + DNS (default) vs one step after the other
    (--no-overlap): a fresh emulator per run, pairs alternating; every Deployment becomes Available only
    after READS reads, with polls every 0.2 s, so that waits take time as on a real node."""
    from tests.harness.emulator import ApiServer, FakeController
    from tests.harness.knative import with_knative
    from tests.integration.conftest import seed_microk8s

    reads, interval = 4, 0.2
    print(f"\n## fresh enable, overlapped vs in order (emulator; every Deployment Available after {reads} reads, "
          f"polls every {interval} s; verify off)")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Config(offline=True, gpu="none", verify=False)
        rc = render_context(probe, KubeVersion.parse("1.34.2"), QUIET)
        names = {o["metadata"]["name"] for r in render_plan(plan(probe, rc.host), rc) for o in r.objects
                 if o["kind"] == "Deployment"}
        runs = [0]

        def enable(overlap: bool) -> Callable[[], object]:
            def run() -> object:
                runs[0] += 1
                root = Path(tmp) / f"run-{runs[0]}"
                (root / "host").mkdir(parents=True)
                controller = with_knative(FakeController(ready_after_reads={n: reads for n in names}))
                with ApiServer(version="1.34.2", controller=controller) as server:
                    seed_microk8s(server)
                    config = Config(kubeconfig=server.write_kubeconfig(root / "kubeconfig"), state_dir=root / "state",
                                    marker=root / "marker", poll_interval=interval, wait_timeout=120, offline=True,
                                    gpu="none", host_root=root / "host", verify=False, overlap=overlap)
                    return addon.enable(config, QUIET)
            return run

        ours, base, ratio = paired(enable(True), enable(False), RUNS)
        print(f"{'overlapped (default)':<28} {ours.fmt(digits=2)} s")
        print(f"{'in order (--no-overlap)':<28} {base.fmt(digits=2)} s")
        goal("fresh enable, Eventing beside Serving (emulator with readiness delays)", measured=f"{ours.median:.2f} s",
             baseline=f"--no-overlap {base.median:.2f} s", ratio=ratio.median, goal="< 1x (faster)",
             met=ratio.median < 1.0)
        print(f"  ratio per pair (overlapped / in order): {ratio.fmt(digits=2)}")


def run_sections() -> None:
    for module_name, function in SECTIONS:
        try:
            module = importlib.import_module(f"benchmarks.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{module_name}":
                continue  # that branch has not landed here
            raise
        fn = getattr(module, function, None)
        if fn is None:
            print(f"\n## {module_name}: no {function}() — skipped")
            continue
        started = time.perf_counter()
        fn()
        print(f"({module_name} section: {time.perf_counter() - started:.0f} s)")


def main() -> None:
    started = time.perf_counter()
    print(f"# make bench ({RUNS} runs per timing unless a section says otherwise; medians [min–max, n])")
    bench_render()
    bench_footprint()
    bench_requests()
    bench_overlap()
    run_sections()
    summary()
    print(f"\n(make bench took {Spread((time.perf_counter() - started,)).median:.0f} s)")


if __name__ == "__main__":
    main()
