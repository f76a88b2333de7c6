#!/usr/bin/env python3
"""`make bench` section: air-gap bundle figures (printed, never asserted).

A set of small multi-arch OCI images (3 platforms each) built offline, whose platforms share base layers the
way real images do (the six Knative stand-ins share one base, Envoy and pause another), is pushed to a real
`docker-registry` on 127.0.0.1. Then, in the same run:

1. Size: the real `bundle create` code path (one OCI layout, shared blobs stored once) next to the sum of
   separate per-image archives of the same images (`skopeo copy --all docker://… oci-archive:…` per image),
   i.e. the de-duplication ratio; plus the time of each.
2. Import: `bundle import --node` (verify + unpack + ONE `ctr images import --all-platforms -` of one archive
   streamed from the unpacked layout) into a fresh real containerd, in rounds with the order rotating, against
   two raw baselines, each into another fresh containerd: `ctr images import --all-platforms` of the per-image
   archives (one call each), and of ONE archive on disk holding the same images; MB/s over the same logical
   content (the per-image archives' bytes). `ctr images ls` must be identical after all three.

Needs skopeo and docker-registry (section 1) and containerd + ctr (section 2); a missing binary skips the
section with a note. Every daemon is stopped and every temporary file removed, whatever happens.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stats import Spread, goal  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from tests.airgap.conftest import Containerd, start_containerd, start_registry  # noqa: E402
from tests.airgap.tinyimages import write_image  # noqa: E402

from hybrid_knative.airgap import bundle as bundle_mod  # noqa: E402
from hybrid_knative.airgap import oci  # noqa: E402
from hybrid_knative.cli.main import cli  # noqa: E402

ARCHES = ("amd64", "arm64", "s390x")  # every image publishes these; the bundle asks for amd64,arm64
BASE_MB = 4  # each of the two shared base layers (incompressible bytes, gzip keeps the size)
OWN_MB = 1  # each image's own layer per platform (hex text: about half after gzip)
REPEAT = int(os.environ.get("BENCH_RUNS", "5"))  # import rounds (a fresh containerd each, order rotating)
KNATIVE = "gcr.io/knative-releases/knative.dev"
IMAGES: dict[str, str] = {  # image -> which shared base it is built on
    **{f"{KNATIVE}/serving/cmd/{c}:v1.23.0": "distroless" for c in
       ("activator", "autoscaler", "controller", "webhook", "queue")},
    f"{KNATIVE}/net-kourier/cmd/kourier:v1.23.0": "distroless",
    "docker.io/envoyproxy/envoy:v1.37.2": "ubuntu",
    "registry.k8s.io/pause:3.10": "ubuntu",
}


def _noise(seed: str, size: int) -> bytes:
    """Deterministic incompressible bytes (sha256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=600)


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _missing(*binaries: str) -> list[str]:
    return [b for b in binaries if shutil.which(b) is None]


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def _counts(ctd: Containerd) -> tuple[int, int]:
    return len(ctd.images()), len(ctd.content())


def _listing(ctd: Containerd) -> str:
    """`ctr images ls` without the LABELS column, sorted."""
    return "\n".join(sorted(" ".join(line.split()[:6]) for line in ctd.run("images", "ls").splitlines()[1:]))


def bench_airgap() -> None:
    print("\n## air-gap bundle (real skopeo, docker-registry on 127.0.0.1, containerd; images built offline)")
    missing = _missing("skopeo", "docker-registry")
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (apt install skopeo docker-registry containerd)")
        return
    root = Path(tempfile.mkdtemp(prefix="hk-bench-airgap-"))
    procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
    old_state = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(root / "xdg-state")  # `bundle create` caches upstream files there
    try:
        registry, proc = start_registry(root / "registry")
        procs.append(proc)
        layout = root / "layout"
        bases = {name: _noise(name, BASE_MB * 1_000_000) for name in sorted(set(IMAGES.values()))}
        for image, base in IMAGES.items():
            write_image(layout, image, arches=ARCHES, shared=bases[base],
                        payload=_noise(image, OWN_MB * 500_000).hex())
        for image in IMAGES:
            _run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                  f"oci:{layout}:{image}", f"docker://{registry.host}/{image.split('/', 1)[1]}"])
        shutil.rmtree(layout)
        print(f"{len(IMAGES)} images x {len(ARCHES)} platforms; 2 shared {BASE_MB} MB base layers "
              f"(6 images + 2 images), {OWN_MB} MB own layer per platform")

        # 1. size: one bundle vs per-image archives
        listing = root / "images.txt"
        listing.write_text("\n".join(IMAGES) + "\n")
        bundle = root / "site.bundle"
        create_args = ["bundle", "create", "-q", "-o", str(bundle), "--arch", "amd64,arm64", "--knative", "1.23",
                       "--source-registry", f"http://{registry.host}", "--images-from", str(listing)]
        outcome: list[object] = []
        create_s = _timed(lambda: outcome.append(CliRunner().invoke(cli, create_args)))
        result = outcome[0]
        if getattr(result, "exit_code", 1) != 0:
            print(f"bundle create failed: {getattr(result, 'output', '')[-400:]}")
            return
        archives = root / "archives"
        archives.mkdir()
        per_image: list[tuple[str, Path]] = []

        def copy_each() -> None:
            for index, image in enumerate(IMAGES):
                dest = archives / f"{index}.tar"
                _run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
                      f"docker://{registry.host}/{image.split('/', 1)[1]}", f"oci-archive:{dest}:{image}"])
                per_image.append((image, dest))

        separate_s = _timed(copy_each)
        bundle_bytes = bundle.stat().st_size
        separate_bytes = sum(p.stat().st_size for _, p in per_image)
        print(f"\n{'artefact':<34} {'MB':>8} {'files':>6} {'seconds':>8} {'vs bundle':>10}")
        print(f"{'one bundle (bundle create)':<34} {_mb(bundle_bytes):>8} {1:>6} {create_s:>8.2f} {1.0:>10.2f}")
        print(f"{'per-image oci-archives (skopeo)':<34} {_mb(separate_bytes):>8} {len(per_image):>6} "
              f"{separate_s:>8.2f} {separate_bytes / bundle_bytes:>10.2f}")
        oci_bytes = sum(e.size for n, e in bundle_mod.read_manifest(bundle).files.items() if n.startswith("oci/"))
        print(f"dedup ratio (per-image archives / bundle): {separate_bytes / bundle_bytes:.2f}x; image content only "
              f"(bundle's oci/ entries, {_mb(oci_bytes)} MB): {separate_bytes / oci_bytes:.2f}x "
              f"(the rest of the bundle: pinned upstream files of Knative 1.23 and MicroK8s, tar headers)")

        # 2. import throughput, same content, fresh containerd per run
        missing = _missing("containerd", "ctr")
        if missing:
            print(f"\nimport section skipped: {', '.join(missing)} not installed (apt install containerd)")
            return
        # the same content as ONE archive (what `bundle import` streams into ctr), on disk: the strictest baseline
        one_archive = root / "all-images.tar"
        prep = bundle_mod.unpack(bundle, root / "prep", trusted=())
        with one_archive.open("wb") as fh:
            oci.stream_archive(fh.fileno(), [(prep.top(i), i.name) for i in prep.manifest.images],
                               {d for i in prep.manifest.images for d in prep.blobs_of(i)}, prep.layout)
        shutil.rmtree(root / "prep")
        print(f"\n{'import (' + str(REPEAT) + ' rounds, fresh containerd each, order rotating)':<46} "
              f"{'seconds':>26} {'MB/s':>7} {'images':>6} {'blobs':>6}")
        methods = ("raw ctr images import --all-platforms, per image", "raw ctr images import, one archive",
                   "bundle import --node")
        times: dict[str, list[float]] = {m: [] for m in methods}
        counts: dict[str, tuple[int, int]] = {}
        listings: dict[str, str] = {}
        for run in range(REPEAT):
            # rotate which method goes first, so drifting load hits all alike
            for method in methods[run % 3:] + methods[:run % 3]:
                ctd, proc = start_containerd(root / f"ctd-{methods.index(method)}-{run}")
                procs.append(proc)
                try:
                    if method == methods[0]:
                        def raw(ctd: Containerd = ctd) -> None:
                            for _, path in per_image:
                                _run([*ctd.ctr, "images", "import", "--all-platforms", str(path)])
                        times[method].append(_timed(raw))
                    elif method == methods[1]:
                        def raw_one(ctd: Containerd = ctd) -> None:
                            _run([*ctd.ctr, "images", "import", "--all-platforms", str(one_archive)])
                        times[method].append(_timed(raw_one))
                    else:
                        # a fresh link per run: `bundle import` reuses an already unpacked copy of the same file
                        link = root / f"run-{run}.bundle"
                        os.link(bundle, link)
                        args = ["bundle", "import", "-q", str(link), "--node", "--ctr", " ".join(ctd.ctr),
                                "--state-dir", str(root / f"import-state-{run}")]
                        res: list[object] = []
                        def ours(args: list[str] = args, res: list[object] = res) -> None:
                            res.append(CliRunner().invoke(cli, args))
                        times[method].append(_timed(ours))
                        if getattr(res[0], "exit_code", 1) != 0:
                            print(f"bundle import failed: {getattr(res[0], 'output', '')[-400:]}")
                            return
                    counts[method] = _counts(ctd)
                    listings[method] = _listing(ctd)
                finally:
                    _stop(proc)
                    procs.remove(proc)
                    shutil.rmtree(ctd.root, ignore_errors=True)
        spreads = {m: Spread(tuple(v)) for m, v in times.items()}
        for method in methods:
            n_images, n_blobs = counts[method]
            sp = spreads[method]
            print(f"{method:<46} {sp.fmt(digits=2):>26} {separate_bytes / 1e6 / sp.median:>7.1f} "
                  f"{n_images:>6} {n_blobs:>6}")
        same = len(set(listings.values())) == 1
        print(f"`ctr images ls` (names, digests, sizes, platforms) identical after all three: "
              f"{'yes' if same else 'NO'}")
        ours_times = times[methods[2]]
        vs_per_image = Spread(tuple(r / o for r, o in zip(times[methods[0]], ours_times, strict=True)))
        one = Spread(tuple(r / o for r, o in zip(times[methods[1]], ours_times, strict=True)))
        goal("bundle import throughput", measured=f"{spreads[methods[2]].median:.2f} s",
             baseline=f"raw ctr import per image {spreads[methods[0]].median:.2f} s", ratio=vs_per_image.median,
             goal="≥ 0.9x raw throughput", met=vs_per_image.median >= 0.9)
        print(f"  throughput ratio per round (raw per-image s / bundle s): {vs_per_image.fmt(digits=2)}")
        print(f"  stricter: vs raw ONE-archive import {spreads[methods[1]].median:.2f} s: {one.fmt(digits=2)}")
        print(f"(MB/s over the same {_mb(separate_bytes)} MB of image content; bundle import includes verifying "
              f"every sha256 and unpacking the {_mb(bundle_bytes)} MB bundle)")
    finally:
        for proc in reversed(procs):
            _stop(proc)
        if old_state is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old_state
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    bench_airgap()
