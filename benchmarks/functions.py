#!/usr/bin/env python3
"""`make bench` section: the function workflow's edit → new revision critical path (printed, never asserted).

Real buildah (vfs, chroot) and a real `docker-registry` on 127.0.0.1; the base image is made offline from
this host's python3 (as in tests/dev). The cluster side is the in-process API emulator with Knative's
controller behaviour, so "Ready" costs what the client does (apply + waits), not a real rollout.

1. `deploy` after an edit of func.py (build + push by digest + apply + wait Ready), next to a baseline in
   the same run: a plain `buildah bud` of the same context + `skopeo copy` of the result to the registry.
   Median, min–max spread over the runs, and the ratio of medians (goal ≤ 1.2 ×; rebuild+push ≤ 5 s).
2. A re-deploy with no change: API writes (goal 0) and its time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUNS = 5


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def bench_functions() -> None:
    import shutil

    print("## functions: edit → new revision (build + push by digest + apply + Ready)")
    missing = [b for b in ("buildah", "skopeo", "docker-registry") if shutil.which(b) is None]
    if missing or not Path("/usr/bin/python3").exists():
        print(f"skipped: needs {', '.join(missing) or '/usr/bin/python3'}")
        return
    from tests.airgap.conftest import start_registry
    from tests.dev.conftest import make_builder, seed
    from tests.harness.emulator import ApiServer, FakeController
    from tests.harness.knative import with_knative

    from hybrid_knative.dev import templates
    from hybrid_knative.dev.deploy import DeployOptions, deploy
    from hybrid_knative.dev.project import load_project
    from hybrid_knative.dev.registry import Registry
    from hybrid_knative.kube.api import KubeApi
    from hybrid_knative.progress import Status
    from hybrid_knative.system.runner import Runner

    quiet = Status(verbosity=-1)
    with tempfile.TemporaryDirectory(prefix="hk-bench-fn-") as tmp_name:
        tmp = Path(tmp_name)
        reg, proc = start_registry(tmp / "registry")
        server = ApiServer(controller=with_knative(FakeController())).__enter__()
        try:
            seed(server)
            kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
            builder = make_builder(tmp / "buildah", reg)
            buildah = builder.with_mirror()
            root = tmp / "hello"
            templates.create("hello", "python-http", root)
            project = load_project(root)
            target = Registry(reg.host, reg.host, "--registry")
            options = DeployOptions(timeout=30, poll_interval=0.01, verify_url=False)
            deploy(project, KubeApi.connect(kubeconfig), buildah, target, quiet, options)  # warm: base pulled
            func = root / "func.py"
            base = ["buildah", "--root", str(buildah.root), "--runroot", str(buildah.runroot), "--storage-driver",
                    "vfs"]
            env_runner = Runner().with_env({"CONTAINERS_REGISTRIES_CONF": str(tmp / "registries.conf")})
            from hybrid_knative.system.buildah import registries_conf

            (tmp / "registries.conf").write_text(registries_conf({"docker.io": reg.host}))
            ours: list[float] = []
            plain: list[float] = []
            adapter: list[float] = []
            for run in range(RUNS):
                func.write_text(func.read_text() + f"\n# edit {run}\n")
                start = time.perf_counter()
                outcome = deploy(project, KubeApi.connect(kubeconfig), buildah, target, quiet, options)
                ours.append(time.perf_counter() - start)
                assert [r.kind for r in outcome.written] == ["Service"]
                func.write_text(func.read_text() + f"\n# baseline edit {run}\n")
                start = time.perf_counter()
                env_runner.run([*base, "bud", "--isolation", "chroot", "-q", "-t", "localhost/bench/plain:1",
                                str(root)], timeout=600)
                env_runner.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                                f"containers-storage:[vfs@{buildah.root}+{buildah.runroot}]localhost/bench/plain:1",
                                f"docker://{reg.host}/default/plain:latest"], timeout=600)
                plain.append(time.perf_counter() - start)
                func.write_text(func.read_text() + f"\n# adapter edit {run}\n")
                start = time.perf_counter()
                buildah.bud(root, root / "Dockerfile", "localhost/bench/adapter:1")
                buildah.push("localhost/bench/adapter:1", f"{reg.host}/default/adapter:latest")
                adapter.append(time.perf_counter() - start)
            print(f"deploy after an edit     {_spread(ours)}")
            print(f"  of which bud + push    {_spread(adapter)}  (our buildah adapter alone)")
            print(f"plain bud + skopeo copy  {_spread(plain)}")
            print(f"ratio (medians)          {statistics.median(ours) / statistics.median(plain):6.2f} ×  (goal ≤ 1.2)")
            deploy(project, KubeApi.connect(kubeconfig), buildah, target, quiet, options)  # the last edit
            kube = KubeApi.connect(kubeconfig)
            start = time.perf_counter()
            again = deploy(project, kube, buildah, target, quiet, options)
            took = time.perf_counter() - start
            print(f"re-deploy, no change     {took:6.2f} s  API writes: {kube.counters.writes} "
                  f"(unchanged objects: {len(again.unchanged)})  (goal: 0 writes)")
        finally:
            server.__exit__(None, None, None)
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    bench_functions()
