"""bundle create → verify → import, against real skopeo, a real registry and a real containerd."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_knative.airgap import bundle as bundle_mod
from hybrid_knative.airgap.importer import MIRRORED_REGISTRIES
from hybrid_knative.cli.main import cli
from hybrid_knative.system.runner import Runner
from tests.airgap.conftest import IMAGES, Containerd, Registry

pytestmark = pytest.mark.airgap


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def copy_of(made: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy.bundle"
    dest.write_bytes(made.read_bytes())
    return dest


def test_create_writes_one_layout_with_shared_blobs(made: Path) -> None:
    m = bundle_mod.read_manifest(made)
    assert [i.name for i in m.images] == list(IMAGES)
    assert m.knative == ("1.23",) and m.arches == ("amd64", "arm64")
    assert m.components["microk8s"] == "d099c907" and m.components["knative-serving"] == "1.23.0"
    for image in m.images:
        assert set(image.platforms) == {"linux/amd64", "linux/arm64", "linux/s390x"}
        assert image.digest.startswith("sha256:")
    # 4 images x (index + 3 x (manifest + config + own layer)) + ONE shared base layer
    assert len(m.blob_names()) == 4 * (1 + 3 * 3) + 1
    assert "upstream/knative-serving/1.23.0/serving-core.yaml" in m.files
    assert "upstream/microk8s/images.txt" in m.files
    with tarfile.open(made) as tar:
        names = tar.getnames()
    assert names[0] == "bundle.json" and sorted(names[1:]) == sorted(m.files)


def test_verify_and_inspect(made: Path) -> None:
    code, out = run("bundle", "verify", str(made))
    assert code == 0, out
    assert "OK" in out
    code, out = run("bundle", "inspect", str(made))
    assert code == 0, out
    assert "docker.io/envoyproxy/envoy:v1.37.2" in out and "linux/arm64" in out and "microk8s/images.txt" in out


def test_import_into_containerd_all_platforms_then_again_is_a_no_op(made: Path, containerd: Containerd,
                                                                  tmp_path: Path) -> None:
    args = ["bundle", "import", str(made), "--ctr", " ".join(containerd.ctr), "--state-dir", str(tmp_path / "s")]
    code, out = run(*args)
    assert code == 0, out
    assert "4 images imported" in out
    m = bundle_mod.read_manifest(made)
    images = containerd.images()
    for image in m.images:
        assert image.name in images
    content = containerd.content()
    expected = {n.rsplit("/", 1)[1] for n in m.blob_names()}
    assert {c.split(":")[1] for c in content} >= expected  # every platform's blobs are in
    listing = containerd.run("images", "ls")
    assert "linux/amd64,linux/arm64,linux/s390x" in listing
    code, out = run(*args)
    assert code == 0 and "0 images imported, 4 already imported" in out
    assert containerd.images() == images and containerd.content() == content


class Counting(Runner):
    """The real runner, counting the commands it runs (and optionally interrupted on one of them)."""

    def __init__(self, interrupt_at: int = 0) -> None:
        super().__init__()
        object.__setattr__(self, "calls", [])
        object.__setattr__(self, "interrupt_at", interrupt_at)

    def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
        self.calls.append([str(a) for a in argv])  # type: ignore[attr-defined]
        if len(self.calls) == self.interrupt_at:  # type: ignore[attr-defined]
            raise KeyboardInterrupt
        return super().run(argv, **kw)


def _listing(ctd: Containerd) -> dict[str, tuple[str, ...]]:
    """`ctr images ls`: name -> (type, digest, size, platforms) — what an import leaves behind."""
    rows = ctd.run("images", "ls").splitlines()[1:]
    # REF TYPE DIGEST SIZE (number, unit) PLATFORMS LABELS
    return {cols[0]: (cols[1], cols[2], " ".join(cols[3:5]), cols[5]) for cols in (row.split() for row in rows)
            if cols}


def test_one_ctr_call_leaves_the_same_images_as_one_import_per_image(made: Path, tmp_path: Path) -> None:
    """Reference: skopeo writes one oci-archive per image (independent of our archive code) and ctr imports
    each with --all-platforms, as the importer did before. Ours: ONE ctr call over one streamed archive.
    Both containerds must list the same names, digests, sizes and platforms, and hold the same blobs."""
    from hybrid_knative.airgap.importer import Target, import_images
    from hybrid_knative.progress import Status
    from tests.airgap.conftest import start_containerd

    unpacked = bundle_mod.unpack(made, tmp_path / "bundles")
    reference, ref_proc = start_containerd(tmp_path / "ctd-ref")
    ours, our_proc = start_containerd(tmp_path / "ctd-ours")
    try:
        for index, image in enumerate(unpacked.manifest.images):
            archive = tmp_path / f"{index}.tar"
            subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests",
                            f"oci:{unpacked.layout}:{image.ref_name}", f"oci-archive:{archive}:{image.name}"],
                           check=True, capture_output=True, timeout=120)
            reference.run("images", "import", "--all-platforms", str(archive))
        runner = Counting()
        report = import_images(unpacked, Target("node", tuple(ours.ctr)), runner=runner,
                               status=Status(verbosity=-1), state_dir=tmp_path / "state")
        assert runner.calls == [[*ours.ctr, "images", "import", "--all-platforms", "-"]]  # type: ignore[attr-defined]
        assert report.imported == tuple(IMAGES)
        expected = _listing(reference)
        assert sorted(expected) == sorted(IMAGES)
        assert _listing(ours) == expected
        for image in unpacked.manifest.images:
            assert expected[image.name][1] == image.digest
            assert expected[image.name][3] == "linux/amd64,linux/arm64,linux/s390x"
        blobs = {f"sha256:{n.rsplit('/', 1)[1]}" for n in unpacked.manifest.blob_names()}
        assert ours.content() == blobs  # every blob once, nothing else
        assert reference.content() >= blobs
    finally:
        for proc in (ref_proc, our_proc):
            proc.terminate()
            proc.wait(timeout=10)


def test_interrupted_import_resumes(made: Path, containerd: Containerd, tmp_path: Path) -> None:
    from hybrid_knative.airgap import importer
    from hybrid_knative.progress import Status

    unpacked = bundle_mod.unpack(made, tmp_path / "bundles")
    target = importer.Target("node", tuple(containerd.ctr))
    with pytest.raises(KeyboardInterrupt):
        importer.import_images(unpacked, target, runner=Counting(interrupt_at=1), status=Status(verbosity=-1),
                               state_dir=tmp_path)
    assert containerd.images() == {}
    state = importer._state_path(tmp_path, unpacked, target)
    assert not state.exists()  # nothing recorded as imported
    # an earlier run got the first two in: the next one imports only the other two, in one call
    first = unpacked.manifest.images[:2]
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"done": {image.name: image.digest for image in first}}))
    runner = Counting()
    report = importer.import_images(unpacked, target, runner=runner, status=Status(verbosity=-1), state_dir=tmp_path)
    assert report.skipped == tuple(IMAGES[:2]) and report.imported == tuple(IMAGES[2:])
    assert len(runner.calls) == 1  # type: ignore[attr-defined]
    assert sorted(containerd.images()) == sorted(IMAGES[2:])
    assert set(json.loads(state.read_text())["done"]) == set(IMAGES)


def test_a_failing_import_command_or_a_damaged_unpacked_copy_imports_nothing(made: Path, containerd: Containerd,
                                                                             tmp_path: Path) -> None:
    """ctr exits without reading its stdin; a blob of the unpacked copy is lost, or changed after it was
    verified: a clear error, no hang, nothing recorded, no image in containerd."""
    from hybrid_knative.airgap import importer
    from hybrid_knative.errors import CommandError, IntegrityError
    from hybrid_knative.progress import Status

    unpacked = bundle_mod.unpack(made, tmp_path / "bundles")
    failing = importer.Target("node", ("false",))
    with pytest.raises(CommandError):
        importer.import_images(unpacked, failing, runner=Runner(), status=Status(verbosity=-1), state_dir=tmp_path)
    assert not importer._state_path(tmp_path, unpacked, failing).exists()
    target = importer.Target("node", tuple(containerd.ctr))
    blob = unpacked.root / _a_layer(made)
    good = blob.read_bytes()
    blob.unlink()
    with pytest.raises(IntegrityError, match="unpacked copy of the bundle is damaged"):
        importer.import_images(unpacked, target, runner=Runner(), status=Status(verbosity=-1), state_dir=tmp_path)
    blob.write_bytes(bytes([good[0] ^ 1]) + good[1:])  # same size, other bytes
    with pytest.raises(IntegrityError, match="changed on disk since the bundle was verified"):
        importer.import_images(unpacked, target, runner=Runner(), status=Status(verbosity=-1), state_dir=tmp_path)
    assert containerd.images() == {}
    assert not importer._state_path(tmp_path, unpacked, target).exists()
    blob.write_bytes(good)
    report = importer.import_images(unpacked, target, runner=Runner(), status=Status(verbosity=-1), state_dir=tmp_path)
    assert report.imported == tuple(IMAGES) and sorted(containerd.images()) == sorted(IMAGES)


@pytest.mark.parametrize("where", ["first chunk", "last byte", "between entries"])
def test_a_blob_changed_while_streaming_leaves_ctr_a_truncated_archive(containerd: Containerd, tmp_path: Path,
                                                                      where: str) -> None:
    """A 2.5 MiB layer goes out in chunks; its last chunk is held back until its sha256 matched. A change
    anywhere (or a failure between two entries, cut short by the caller) leaves real ctr an archive it
    refuses as a whole: no image is created."""
    import hashlib

    from hybrid_knative.airgap import oci
    from hybrid_knative.errors import IntegrityError
    from tests.airgap.tinyimages import write_image

    layout = tmp_path / "layout"
    name = "registry.k8s.io/big:1.0"
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(80_000))  # 2.5 MiB
    write_image(layout, name, arches=("amd64",), shared=noise)
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    _, blobs = oci.reachable(top, lambda d: (layout / oci.blob_path(d)).read_bytes(), what=name)
    big = max(blobs, key=lambda d: (layout / oci.blob_path(d)).stat().st_size)
    path = layout / oci.blob_path(big)
    assert path.stat().st_size > 2 * (1 << 20)
    data = path.read_bytes()
    archive = tmp_path / "images.tar"
    with archive.open("wb") as fh:  # the untouched layout imports
        oci.stream_archive(fh.fileno(), [(top, name)], blobs, layout)
    containerd.run("images", "import", "--all-platforms", str(archive))
    assert containerd.images() == {name: name}
    containerd.run("images", "rm", name)
    if where == "between entries":
        blobs = [*blobs, "sha256:" + "0" * 64]  # a blob file that is not there: fails after a whole entry
    else:
        at = 0 if where == "first chunk" else len(data) - 1
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    with archive.open("wb") as fh:
        with pytest.raises((IntegrityError, FileNotFoundError)):
            oci.stream_archive(fh.fileno(), [(top, name)], blobs, layout)
        oci.cut_short(fh.fileno())
    assert archive.stat().st_size % 512 != 0
    proc = subprocess.run([*containerd.ctr, "images", "import", "--all-platforms", str(archive)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout
    assert containerd.images() == {}


def _rewrite(src: Path, dest: Path, *, drop: str | None = None, tamper: str | None = None) -> None:
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if member.name == drop:
                continue
            data = tin.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == tamper:
                data = bytes([data[0] ^ 1]) + data[1:]
            import io

            tout.addfile(member, io.BytesIO(data))


def _a_layer(made: Path) -> str:
    m = bundle_mod.read_manifest(made)
    small = {f"oci/blobs/sha256/{d.split(':')[1]}" for d in m.manifests}
    return next(n for n in sorted(m.blob_names()) if n not in small)


@pytest.mark.parametrize("damage", ["tamper", "truncate", "remove", "extra"])
def test_damaged_bundle_is_refused_and_nothing_is_imported(made: Path, containerd: Containerd, tmp_path: Path,
                                                           damage: str) -> None:
    bad = tmp_path / "bad.bundle"
    layer = _a_layer(made)
    if damage == "tamper":
        _rewrite(made, bad, tamper=layer)
        expect = f"entry {layer} is corrupt"
    elif damage == "truncate":
        data = made.read_bytes()
        bad.write_bytes(data[: len(data) * 2 // 3])
        expect = "truncated"
    elif damage == "remove":
        _rewrite(made, bad, drop=layer)
        expect = f"missing, first {layer}"
    else:
        _rewrite(made, bad)
        with tarfile.open(bad, "a") as tar:
            tar.add(made, arcname="oci/blobs/sha256/extra")
        expect = "unexpected entry: oci/blobs/sha256/extra"
    code, out = run("bundle", "verify", str(bad))
    assert code == 1 and expect in out, out
    code, out = run("bundle", "import", str(bad), "--ctr", " ".join(containerd.ctr), "--state-dir", str(tmp_path))
    assert code == 1 and expect in out, out
    assert containerd.images() == {} and containerd.content() == set()
    assert not any((tmp_path / "bundles").glob("[0-9a-f]*"))  # nothing unpacked either


def test_registry_mirror_mode_and_a_pull_through_containerd(made: Path, registry: Registry, containerd: Containerd,
                                                             tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    code, out = run("bundle", "import", str(made), "--registry-mirror", registry.host, "--certs-dir", str(certs),
                    "--state-dir", str(tmp_path / "s"))
    assert code == 0, out
    catalog = json.loads(__import__("urllib.request").request.urlopen(
        f"http://{registry.host}/v2/_catalog", timeout=5).read())["repositories"]
    assert sorted(catalog) == sorted(i.split("/", 1)[1].rsplit(":", 1)[0] for i in IMAGES)
    for reg, server in MIRRORED_REGISTRIES.items():
        assert (certs / reg / "hosts.toml").read_text() == (
            f'server = "{server}"\n\n[host."http://{registry.host}"]\n  capabilities = ["pull", "resolve"]\n')
    # containerd pulls gcr.io/... through the mirror; a dead proxy makes any fallback to the internet fail here
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY":
           "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    import subprocess

    image = IMAGES[0]
    proc = subprocess.run([*containerd.ctr, "images", "pull", "--hosts-dir", str(certs), "--all-platforms", image],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert image in containerd.images()


def test_bad_input(tmp_path: Path, source_registry: Registry) -> None:
    code, out = run("bundle", "verify", str(tmp_path / "nope.bundle"))
    assert code == 2 and "bundle not found" in out
    junk = tmp_path / "junk.bundle"
    junk.write_text("hello")
    code, out = run("bundle", "verify", str(junk))
    assert code == 2 and "not a hybrid-knative bundle" in out
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(junk, arcname="readme.txt")
    code, out = run("bundle", "import", str(other), "--ctr", "ctr", "--state-dir", str(tmp_path))
    assert code == 2 and "not a hybrid-knative bundle" in out
    code, out = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--arch", "amd64,sparc")
    assert code == 2 and "unknown architecture 'sparc'" in out
    listing = tmp_path / "images.txt"
    listing.write_text(IMAGES[0] + "\n")
    code, out = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--arch", "riscv64", "--images-from",
                    str(listing), "--source-registry", f"http://{source_registry.host}")
    assert code == 2 and "has no linux/riscv64 platform" in out and "linux/s390x" in out
    assert not any(p.name.startswith((".x.bundle", "x.bundle")) for p in tmp_path.iterdir())
    code, out = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--with", "tpu")
    assert code == 2 and "Invalid value for '--with'" in out
    code, out = run("enable", "--bundle", str(tmp_path / "missing.bundle"), "--kubeconfig", str(junk))
    assert code == 2 and "bundle not found" in out


def test_arch_pinned_images_need_only_their_arch(registry: Registry, tmp_path: Path) -> None:
    """An amd64-only image (like the ROCm device plugin) in an amd64,arm64 bundle: required only for amd64."""
    import subprocess

    from hybrid_knative.errors import ConfigError
    from hybrid_knative.manifests.images import ImageRef
    from hybrid_knative.progress import Status
    from hybrid_knative.system.runner import Runner
    from tests.airgap.tinyimages import write_image

    image = "docker.io/rocm/k8s-device-plugin:1.31.0.9"
    write_image(tmp_path / "layout", image, arches=("amd64",))
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{tmp_path / 'layout'}:{image}", f"docker://{registry.host}/rocm/k8s-device-plugin:1.31.0.9"],
                   check=True)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ref = ImageRef.parse(image)
    kw = {"upstream": [], "knative": ["1.23"], "components": {}, "runner": Runner(), "status": Status(verbosity=-1),
          "source": bundle_mod.Source.parse(f"http://{registry.host}")}
    with pytest.raises(ConfigError, match="has no linux/arm64 platform"):
        bundle_mod.create(out_dir / "a.bundle", [ref], arches=("amd64", "arm64"), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="runs only on amd64, none of --arch arm64"):
        bundle_mod.create(out_dir / "b.bundle", [ref], arches=("arm64",), only_on={ref: ("amd64",)},
                          **kw)  # type: ignore[arg-type]
    assert list(out_dir.iterdir()) == []
    m = bundle_mod.create(out_dir / "c.bundle", [ref], arches=("amd64", "arm64"), only_on={ref: ("amd64",)},
                          **kw)  # type: ignore[arg-type]
    assert m.arches == ("amd64", "arm64") and set(m.images[0].platforms) == {"linux/amd64"}
    assert bundle_mod.verify(out_dir / "c.bundle") == m
