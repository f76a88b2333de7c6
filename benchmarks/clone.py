#!/usr/bin/env python3
"""`make bench` section: clone figures (printed, never asserted).

1. Images: four small two-platform images sharing one base layer are pushed to a real `docker-registry`
   on 127.0.0.1. clone's image path (digest lookup, presence check, `skopeo copy --all --preserve-digests`)
   copies them to a fresh password-protected registry; in the same run a plain `skopeo copy` of the same
   images goes to another fresh one, alternating, PAIRS times. Printed: bytes the target stored vs the
   unique blob bytes (goal 1.0×: shared layers cross once) and clone's time vs the plain copy's (goal
   ≤ 1.1×), medians over the pairs.
2. Objects: the whole clone of the test shop (2 services, broker, triggers, sources, config, RBAC) between
   two API emulators: requests to the source and to the target per cloned service, first run and re-run.

Needs skopeo and docker-registry; a missing binary skips the section with a note.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stats import Spread, goal  # noqa: E402
from tests.airgap.tinyimages import write_image  # noqa: E402
from tests.clone.conftest import SOURCE_ZONE, TARGET_DOMAIN, seed_shop  # noqa: E402
from tests.clone.parts import Registry, seed_knative, start_cluster, start_registry  # noqa: E402

from hybrid_knative.clone import images as imaging  # noqa: E402
from hybrid_knative.clone.run import CloneOptions, clone  # noqa: E402
from hybrid_knative.kube.api import KubeApi  # noqa: E402
from hybrid_knative.progress import Status  # noqa: E402
from hybrid_knative.system.http import HostProbes  # noqa: E402
from hybrid_knative.system.image_registry import ImageRegistry  # noqa: E402
from hybrid_knative.system.runner import Runner  # noqa: E402

IMAGES = ("shop/hello", "shop/orders", "shop/cart", "shop/ticker")
BASE_MB = 3
OWN_KB = 256
PAIRS = 8  # ≥ 5 pairs, each with two fresh target registries; which side runs first alternates


def _noise(seed: str, size: int) -> bytes:
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _unique_blob_bytes(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())


def _images(tmp: Path) -> tuple[Registry, Path, dict[str, str]]:
    layout = tmp / "layout"
    base = _noise("base", BASE_MB * 1024 * 1024)
    src = start_registry(tmp / "src")
    refs: dict[str, str] = {}  # tag reference → the digest that runs (a Revision's imageDigest)
    for name in IMAGES:
        digest = write_image(layout, f"{name}:1", payload=_noise(name, OWN_KB * 1024).hex()[: OWN_KB * 1024],
                             shared=base)
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{layout}:{name}:1", f"docker://{src.host}/{name}:1"], check=True, timeout=120)
        refs[f"{src.host}/{name}:1"] = digest
    return src, layout, refs


def _clone_images(refs: dict[str, str], dst: Registry) -> float:
    skopeo = ImageRegistry(Runner(), authfile=dst.authfile)
    start = time.perf_counter()
    digests = {("Service", "shop", ref, "c"): f"{ref.rsplit(':', 1)[0]}@{digest}" for ref, digest in refs.items()}
    copies = imaging.plan_copies(digests, f"{dst.host}/acme", {})
    imaging.copy_all(copies, skopeo, dry_run=False, on_progress=lambda _m: None)
    return time.perf_counter() - start


def _plain_copy(refs: dict[str, str], dst: Registry) -> float:
    start = time.perf_counter()
    for ref in refs:
        path = ref.split("/", 1)[1]
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
                        "--dest-tls-verify=false", "--dest-authfile", str(dst.authfile), f"docker://{ref}",
                        f"docker://{dst.host}/acme/{path}"], check=True, timeout=300)
    return time.perf_counter() - start


def bench_images() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hk-bench-clone-"))
    started: list[Registry] = []
    try:
        src, layout, refs = _images(tmp)
        started.append(src)
        unique = _unique_blob_bytes(layout)  # layers, configs, manifests and indexes: each blob once
        clone_times, plain_times, stored = [], [], 0
        for i in range(PAIRS):
            a = start_registry(tmp / f"clone{i}", auth=True)
            b = start_registry(tmp / f"plain{i}", auth=True)
            started += [a, b]
            if i % 2:
                clone_times.append(_clone_images(refs, a))
                plain_times.append(_plain_copy(refs, b))
            else:
                plain_times.append(_plain_copy(refs, b))
                clone_times.append(_clone_images(refs, a))
            stored = a.blob_bytes()
            for reg in (a, b):  # fresh registries each pair; free their disk as we go
                reg.stop()
                started.remove(reg)
        ours, base = Spread(tuple(clone_times)), Spread(tuple(plain_times))
        ratios = Spread(tuple(c / p for c, p in zip(clone_times, plain_times, strict=True)))
        print(f"  images: {len(IMAGES)} × 2 platforms, one {BASE_MB} MB base layer shared by all")
        goal("clone: bytes the target registry stored / unique blob bytes", measured=f"{stored / 1e6:.2f} MB",
             baseline=f"unique blobs {unique / 1e6:.2f} MB", ratio=stored / unique, goal="1.0× (layers cross once)",
             met=abs(stored / unique - 1) < 0.005)
        goal("clone: image copy time vs plain `skopeo copy --preserve-digests`", measured=f"{ours.fmt(1, 2)} s",
             baseline=f"{base.fmt(1, 2)} s (alternating pairs, fresh target registries)", ratio=ratios.median,
             goal="≤ 1.1× (per-pair median)", met=ratios.median <= 1.1)
        print(f"  per-pair ratios: {ratios.fmt(1, 2)}")
    finally:
        for reg in started:
            reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_objects() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hk-bench-clone-obj-"))
    servers = []
    regs: list[Registry] = []
    try:
        source = start_cluster(tmp, "local")
        target = start_cluster(tmp, "cloud")
        servers += [source.server, target.server]
        seed_knative(source.server, domain=SOURCE_ZONE)
        seed_knative(target.server, domain=TARGET_DOMAIN)
        src = start_registry(tmp / "src")
        dst = start_registry(tmp / "dst", auth=True)
        regs += [src, dst]
        seed_shop(source, src, tmp / "layout")
        options = CloneOptions(registry=f"{dst.host}/acme", registry_authfile=dst.authfile, wait_timeout=10,
                               poll_interval=0.001, verify=False)
        for label in ("first run", "re-run"):
            s = KubeApi.connect(source.kubeconfig, "local")
            t = KubeApi.connect(target.kubeconfig, "cloud")
            report = clone(s, t, options, Status(verbosity=-1), skopeo=ImageRegistry(Runner(), authfile=dst.authfile),
                           installer=None, probes=HostProbes())
            services = sum(1 for c in report.objects if c.obj["kind"] == "Service")
            src_requests = s.counters.reads + s.counters.writes
            tgt_requests = t.counters.reads + t.counters.writes
            print(f"  objects ({label}): {len(report.objects)} objects, {services} services; requests per service: "
                  f"source {src_requests / services:.1f}, target {tgt_requests / services:.1f} "
                  f"({t.counters.writes} writes)")
    finally:
        for server in servers:
            server.__exit__(None, None, None)
        for reg in regs:
            reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_clone() -> None:
    print("clone (issue 16):")
    missing = [b for b in ("skopeo", "docker-registry") if shutil.which(b) is None]
    if missing:
        print(f"  skipped: needs {', '.join(missing)}")
        return
    bench_images()
    bench_objects()


if __name__ == "__main__":
    bench_clone()
