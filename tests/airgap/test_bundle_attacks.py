"""Attacks on bundles (issue 11, items 12-14 and 17): a generated corpus of malformed but self-consistent
bundles, a re-packed bundle with a changed upstream file, signatures, killed unpacks, swapped tags."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hybrid_knative.airgap import bundle as bundle_mod
from hybrid_knative.cli.main import cli
from tests.airgap.conftest import IMAGES, Containerd, Registry
from tests.airgap.tinyimages import write_image

pytestmark = pytest.mark.airgap

Entries = dict[str, bytes]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, BaseException | None]:
    result = CliRunner(env=env).invoke(cli, list(args))
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, exc


def read_bundle(path: Path) -> tuple[dict[str, Any], Entries]:
    entries: Entries = {}
    with tarfile.open(path) as tar:
        for member in tar:
            fh = tar.extractfile(member)
            assert fh is not None
            entries[member.name] = fh.read()
    return json.loads(entries.pop("bundle.json")), entries


def pack(path: Path, doc: Any, entries: Entries, *, raw_manifest: bytes | None = None,
         keep: frozenset[str] = frozenset()) -> Path:
    """Write a bundle whose bundle.json matches its entries (sha256 + size recomputed, except ``keep``)."""
    doc = copy.deepcopy(doc)
    if isinstance(doc, dict) and isinstance(doc.get("files"), dict):
        for name, data in entries.items():
            if name in doc["files"] and isinstance(doc["files"][name], dict) and name not in keep:
                doc["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    raw = raw_manifest if raw_manifest is not None else json.dumps(doc).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("bundle.json", raw), *entries.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def replace_blob(doc: dict[str, Any], entries: Entries, old_digest: str, data: bytes) -> str:
    """Swap a blob for ``data`` under its new digest, rewriting every reference (index.json, bundle.json)."""
    new = "sha256:" + hashlib.sha256(data).hexdigest()
    old_name, new_name = f"oci/blobs/sha256/{old_digest[7:]}", f"oci/blobs/sha256/{new[7:]}"
    entries[new_name] = data
    del entries[old_name]
    doc["files"][new_name] = doc["files"].pop(old_name)
    doc["manifests"] = [new if d == old_digest else d for d in doc["manifests"]]
    index = json.loads(entries["oci/index.json"])
    for desc in index["manifests"]:
        if desc["digest"] == old_digest:
            desc["digest"] = new
    entries["oci/index.json"] = json.dumps(index).encode()
    for image in doc["images"]:
        if image["digest"] == old_digest:
            image["digest"] = new
    return new


Mutation = Callable[[dict[str, Any], Entries], "str | None"]  # returns the text the refusal must name


def _files(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["files"][name]  # type: ignore[no-any-return]


def _first_upstream(doc: dict[str, Any]) -> str:
    return next(n for n in sorted(doc["files"]) if n.startswith("upstream/"))


def _index_top(entries: Entries) -> str:
    return str(json.loads(entries["oci/index.json"])["manifests"][0]["digest"])


def m_manifest(key: str, value: Any, names: str) -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        doc[key] = value
        return names
    return mutate


def m_entry(field: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        name = _first_upstream(doc)
        _files(doc, name)[field] = value
        return name
    return mutate


def m_image(field: str, value: Any, names: str = "image") -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        doc["images"][0][field] = value
        return names
    return mutate


def m_index(new_index: Any) -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        entries["oci/index.json"] = new_index if isinstance(new_index, bytes) else json.dumps(new_index).encode()
        return "index"
    return mutate


def m_top_blob(content: Any) -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        replace_blob(doc, entries, _index_top(entries), data)
        return "image"
    return mutate


def m_entry_name(name: str) -> Mutation:
    def mutate(doc: dict[str, Any], entries: Entries) -> str:
        doc["files"][name] = {"sha256": "0" * 64, "size": 1}
        entries[name] = b"x"
        return "entry name"
    return mutate


CORPUS: dict[str, Mutation] = {
    "format": m_manifest("format", "hybrid-knative-bundle/9", "format"),
    "files-list": m_manifest("files", [], "files"),
    "images-dict": m_manifest("images", {}, "images"),
    "knative-int": m_manifest("knative", 1, "knative"),
    "knative-ints": m_manifest("knative", [1, 2], "knative"),
    "components-list": m_manifest("components", ["a"], "components"),
    "arches-nested": m_manifest("arches", [["amd64"]], "arches"),
    "manifests-str": m_manifest("manifests", "sha256:00", "manifests"),
    "manifests-bad-digest": m_manifest("manifests", ["md5:abc"], "manifests"),
    "manifests-missing": m_manifest("manifests", ["sha256:" + "e" * 64], "manifest"),
    "size-1e400": m_entry("size", 1e400),
    "size-float": m_entry("size", 1.5),
    "size-negative": m_entry("size", -1),
    "size-string": m_entry("size", "12"),
    "size-bool": m_entry("size", True),
    "size-huge": m_entry("size", 2 ** 80),
    "sha-int": m_entry("sha256", 5),
    "sha-short": m_entry("sha256", "abc"),
    "entry-not-object": lambda doc, entries: (doc["files"].__setitem__(_first_upstream(doc), 7),
                                              _first_upstream(doc))[1],
    "image-not-object": m_manifest("images", [1], "images[0]"),
    "image-digest-int": m_image("digest", 5, "digest"),
    "image-digest-bad": m_image("digest", "sha256:zz", "digest"),
    "image-platforms-list": m_image("platforms", ["linux/amd64"], "platforms"),
    "image-platforms-int": m_image("platforms", {"linux/amd64": 3}, "platforms"),
    "image-name-missing": lambda doc, entries: (doc["images"][0].pop("name"), "name")[1],
    "image-ref-name-weird": m_image("ref_name", "../../../etc", "name"),
    "name-dotdot": m_entry_name("upstream/../../etc/passwd"),
    "name-absolute": m_entry_name("/etc/passwd"),
    "name-other-root": m_entry_name("etc/passwd"),
    "name-nul": m_entry_name("upstream/a\x00b"),
    "index-not-json": m_index(b"{"),
    "index-list": m_index([1, 2]),
    "index-manifests-str": m_index({"manifests": "x"}),
    "index-descriptor-int": m_index({"manifests": [5]}),
    "index-descriptor-no-digest": m_index({"manifests": [{"mediaType": "x"}]}),
    "index-annotations-list": m_index({"manifests": [{"digest": "sha256:" + "a" * 64, "annotations": []}]}),
    "index-deep": m_index(b'{"manifests": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "top-not-json": m_top_blob(b"\xff\xfe"),
    "top-list": m_top_blob([1]),
    "top-manifests-str": m_top_blob({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": "x"}),
    "top-descriptor-int": m_top_blob({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [1]}),
    "top-layers-dict": m_top_blob({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"digest": "sha256:" + "a" * 64}, "layers": {}}),
    "top-config-missing": m_top_blob({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}),
    "top-deep": m_top_blob(b"[" * 5000 + b"]" * 5000),
}


@pytest.fixture(scope="module")
def base(made: Path) -> tuple[dict[str, Any], Entries]:
    return read_bundle(made)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_malformed_bundles_are_refused_naming_the_bad_entry(base: tuple[dict[str, Any], Entries], tmp_path: Path,
                                                             case: str) -> None:
    doc, entries = copy.deepcopy(base[0]), dict(base[1])
    names = CORPUS[case](doc, entries)
    bad = pack(tmp_path / "bad.bundle", doc, entries, keep=frozenset({names}))
    for args in (("bundle", "verify", str(bad)), ("bundle", "inspect", str(bad)),
                 ("bundle", "import", str(bad), "--ctr", "false", "--state-dir", str(tmp_path / "s"))):
        code, out, exc = run(*args)
        if args[1] == "inspect" and code == 0:
            continue  # inspect reads only bundle.json: damage further in is verify's job
        assert exc is None, f"{case}: {args[1]} raised {exc!r}"
        assert code in (1, 2) and "Traceback" not in out, (case, args[1], out)
        assert "Error:" in out and names.lower() in out.lower(), (case, args[1], out)
    assert not list((tmp_path / "s" / "bundles").glob("[0-9a-f]*")) if (tmp_path / "s").exists() else True


def test_a_200_mb_bundle_json_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A tar header declaring a 200 MB bundle.json (the data need not even be there)."""
    path = tmp_path / "huge.bundle"
    info = tarfile.TarInfo("bundle.json")
    info.size = 200 * 1024 * 1024
    with path.open("wb") as fh:
        fh.write(info.tobuf(tarfile.PAX_FORMAT))
        fh.write(b"{" * 1024 * 1024)
    tracemalloc.start()
    try:
        for command in ("inspect", "verify"):
            code, out, exc = run("bundle", command, str(path))
            assert exc is None and code == 2 and "bundle.json is 209715200 bytes" in out, out
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, peak


def test_a_repacked_bundle_with_a_changed_upstream_file_is_refused(base: tuple[dict[str, Any], Entries],
                                                                    containerd: Containerd, tmp_path: Path) -> None:
    doc, entries = copy.deepcopy(base[0]), dict(base[1])
    name = "upstream/knative-serving/1.23.0/serving-core.yaml"
    entries[name] = entries[name].replace(b"gcr.io/knative-releases", b"evil.example/knative-releases", 1)
    bad = pack(tmp_path / "repacked.bundle", doc, entries)  # every digest recomputed: self-consistent
    for args in (("bundle", "verify", str(bad)),
                 ("bundle", "import", str(bad), "--ctr", " ".join(containerd.ctr), "--state-dir", str(tmp_path))):
        code, out, exc = run(*args)
        assert exc is None and code == 1 and f"{name} is not the pinned upstream file" in out, out
    assert containerd.images() == {}


def test_an_unknown_upstream_file_is_refused(base: tuple[dict[str, Any], Entries], tmp_path: Path) -> None:
    doc, entries = copy.deepcopy(base[0]), dict(base[1])
    doc["files"]["upstream/evil/1.0/x.yaml"] = {}
    entries["upstream/evil/1.0/x.yaml"] = b"kind: Pod\n"
    code, out, _ = run("bundle", "verify", str(pack(tmp_path / "x.bundle", doc, entries)))
    assert code == 1 and "upstream/evil/1.0/x.yaml is not a file this hybrid-knative pins" in out, out


def test_stale_unpack_folders_of_killed_runs_are_removed(made: Path, tmp_path: Path) -> None:
    cache = tmp_path / "bundles"
    cache.mkdir()
    for i in range(3):  # what SIGKILL during unpack leaves behind
        stale = cache / f".unpack-killed{i}"
        (stale / "oci").mkdir(parents=True)
        (stale / "oci" / "blob").write_bytes(b"x" * 1000)
    unpacked = bundle_mod.unpack(made, cache)
    assert list(cache.glob(".unpack-*")) == []
    assert (unpacked.root / ".complete").is_file()


def test_a_killed_unpack_is_cleaned_by_the_next_run(made: Path, tmp_path: Path) -> None:
    """A real SIGKILL in the middle of writing entries."""
    import sys

    cache = tmp_path / "bundles"
    script = ("import os, signal, sys\nfrom pathlib import Path\nfrom hybrid_knative.airgap import bundle as b\n"
              "orig = b._copy_hashing\ncount = [0]\n"
              "def slow(*a, **k):\n    count[0] += 1\n    if count[0] == 20:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    return orig(*a, **k)\n"
              "b._copy_hashing = slow\nb.unpack(Path(sys.argv[1]), Path(sys.argv[2]))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(made), str(cache)], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -9, proc.stderr
    assert len(list(cache.glob(".unpack-*"))) == 1
    bundle_mod.unpack(made, cache)
    assert list(cache.glob(".unpack-*")) == []


# --- signatures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("maker.key", "other.key"):
        code, out, exc = run("bundle", "keygen", "-o", str(folder / name))
        assert code == 0 and exc is None, out
    assert oct(os.stat(folder / "maker.key").st_mode & 0o777) == "0o600"
    return folder / "maker.key", folder / "other.key"


@pytest.fixture(scope="module")
def signed(source_registry: Registry, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("signed")
    listing = tmp / "images.txt"
    listing.write_text(IMAGES[3] + "\n")
    out = tmp / "signed.bundle"
    code, output, exc = run("bundle", "create", "-o", str(out), "--arch", "amd64", "--knative", "1.23",
                            "--source-registry", f"http://{source_registry.host}", "--images-from", str(listing),
                            "--sign-key", str(keys[0]))
    assert code == 0 and exc is None, output
    assert "signed with key" in output
    return out


def test_a_signed_bundle_verifies_only_against_its_key(signed: Path, made: Path, keys: tuple[Path, Path]) -> None:
    maker, other = (Path(f"{k}.pub") for k in keys)
    code, out, _ = run("bundle", "verify", str(signed), "--trust", str(maker))
    assert code == 0 and "signed by trusted key" in out, out
    code, out, _ = run("bundle", "verify", str(signed))
    assert code == 0 and "NOT checked" in out, out
    code, out, _ = run("bundle", "verify", str(signed), "--trust", str(other))
    assert code == 1 and "not valid for any trusted key" in out, out
    code, out, _ = run("bundle", "verify", str(made), "--trust", str(maker))
    assert code == 1 and "is not signed" in out, out
    # the site-wide setting applies to every verify/import/enable --bundle
    code, out, _ = run("bundle", "verify", str(made), env={"HYBRID_KNATIVE_TRUSTED_KEYS": str(maker)})
    assert code == 1 and "is not signed" in out, out


def test_a_resigned_or_modified_signed_bundle_is_refused(signed: Path, keys: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    maker = Path(f"{keys[0]}.pub")
    doc, entries = read_bundle(signed)
    doc["created_by"] = "someone else"  # any change to bundle.json, digests all consistent
    bad = pack(tmp_path / "changed.bundle", doc, entries)  # keeps the old bundle.sig entry
    code, out, _ = run("bundle", "verify", str(bad), "--trust", str(maker))
    assert code == 1 and "not valid for any trusted key" in out, out
    code, out, _ = run("bundle", "import", str(bad), "--ctr", "false", "--trust", str(maker), "--state-dir",
                       str(tmp_path / "s"))
    assert code == 1 and "not valid for any trusted key" in out, out


def test_signing_keys_must_be_private(keys: tuple[Path, Path], tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    loose.write_bytes(keys[0].read_bytes())
    loose.chmod(0o644)
    code, out, exc = run("bundle", "create", "-o", str(tmp_path / "x.bundle"), "--sign-key", str(loose))
    assert exc is None and code == 2 and "can be read by other users" in out, out
    assert not (tmp_path / "x.bundle").exists()
    code, out, _ = run("bundle", "keygen", "-o", str(keys[0]))
    assert code == 2 and "already exists" in out


# --- tags resolved to digests; a swapped tag is refused at import ---------------------------------------


def _push(registry: Registry, tmp: Path, image: str, payload: str) -> str:
    layout = tmp / f"layout-{payload}"
    write_image(layout, image, arches=("amd64",), payload=payload)
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                    f"oci:{layout}:{image}", f"docker://{registry.host}/{image.split('/', 1)[1]}"], check=True,
                   timeout=120)
    return str(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])


def test_a_swapped_tag_is_refused_at_import(registry: Registry, containerd: Containerd, tmp_path: Path) -> None:
    image = "docker.io/library/pinned:1.0"
    listing = tmp_path / "images.txt"
    listing.write_text(image + "\n")
    first = _push(registry, tmp_path, image, "genuine")
    bundles = []
    for name in ("one", "two"):
        out = tmp_path / f"{name}.bundle"
        code, output, exc = run("bundle", "create", "-o", str(out), "--arch", "amd64", "--knative", "1.23",
                                "--source-registry", f"http://{registry.host}", "--images-from", str(listing))
        assert code == 0 and exc is None, output
        bundles.append(out)
        if name == "one":
            second = _push(registry, tmp_path, image, "swapped")  # same tag, other content
    assert bundle_mod.read_manifest(bundles[0]).images[0].digest == first
    assert bundle_mod.read_manifest(bundles[1]).images[0].digest == second != first
    args = ["--ctr", " ".join(containerd.ctr), "--state-dir", str(tmp_path / "state")]
    code, out, _ = run("bundle", "import", str(bundles[0]), *args)
    assert code == 0, out
    code, out, exc = run("bundle", "import", str(bundles[1]), *args)
    assert exc is None and code == 1 and "is not the image this site imported under that tag" in out, out
    assert first in out and second in out
    listing_out = containerd.run("images", "ls")
    assert first in listing_out and second not in listing_out
