"""The air-gap bundle: one tar holding ONE OCI layout (shared blobs stored once), the pinned upstream
files, and ``bundle.json`` (versions, images → digests per platform, sha256 + size of every entry).

Layout inside the tar (``bundle.json`` always first, so a reader knows what to expect)::

    bundle.json
    oci/oci-layout  oci/index.json  oci/blobs/sha256/<hex>…
    upstream/<component>/<version>/<file>…

Every image keeps its upstream index and ALL the platforms upstream publishes: manifests reference
Knative images by index digest, so pruning the index would change that digest, and containerd's
``import --all-platforms`` (the only mode that keeps more than the host's platform) refuses an index
whose platforms are not all present. ``--arch`` guarantees that the requested platforms exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from hybrid_knative import __version__
from hybrid_knative.airgap import oci, signing
from hybrid_knative.errors import ConfigError, IntegrityError, PermanentError
from hybrid_knative.manifests.images import ImageRef
from hybrid_knative.progress import Status
from hybrid_knative.system.registry import Skopeo
from hybrid_knative.system.runner import Runner

FORMAT = "hybrid-knative-bundle/1"
MANIFEST = "bundle.json"
SIGNATURE = "bundle.sig"  # optional second entry: an Ed25519 signature over bundle.json's bytes
MAX_MANIFEST_BYTES = 32 * 1024 * 1024  # bundle.json (tens of kB in practice)
MAX_ENTRIES = 200_000
MAX_ENTRY_BYTES = 1 << 40  # 1 TiB: a declared size beyond this is nonsense
MAX_SMALL_BYTES = 4 * 1024 * 1024  # a manifest/index blob (the OCI distribution limit)
MAX_SMALL_TOTAL = 256 * 1024 * 1024  # all of them together, kept in memory while verifying
OCI_DIR = "oci"
UPSTREAM_DIR = "upstream"
# `bundle create --with functions`: the site's own wheels for offline builds, chosen at bundle time and not
# pinned by the catalog; bundle.json's sha256 (and the signature, when signed) are all that cover them
SITE_WHEELHOUSE = f"{UPSTREAM_DIR}/wheelhouse/"
SITE_WHEELHOUSE_COMPONENT = "functions"
KNOWN_ARCHES = ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class BundleImage:
    name: str  # the reference exactly as the rendered objects use it (containerd image name)
    ref_name: str  # its name inside the OCI layout
    source: str  # where it was pulled from
    digest: str  # what the reference resolved to (floating tags: recorded here)
    media_type: str
    platforms: dict[str, str]  # os/arch[/variant] -> manifest digest


@dataclasses.dataclass(frozen=True)
class BundleManifest:
    knative: tuple[str, ...]
    components: dict[str, str]
    arches: tuple[str, ...]
    images: tuple[BundleImage, ...]
    files: dict[str, FileEntry]  # every tar entry except bundle.json
    manifests: tuple[str, ...] = ()  # digests of manifest/index blobs (small; read during verify)
    created_by: str = f"hybrid-knative {__version__}"

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, **dataclasses.asdict(self)}
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, source: str) -> BundleManifest:
        """Parse bundle.json strictly: every malformed field is refused by name, never with a traceback."""
        def bad(why: str) -> ConfigError:
            return ConfigError(f"not a hybrid-knative bundle: {source}", details=why,
                               resolution="pass a file made by `hybrid-knative bundle create`")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise bad(f"bundle.json is {len(raw)} bytes (at most {MAX_MANIFEST_BYTES})")
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise bad("bundle.json is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise bad(f"unsupported bundle format {str(found)[:60]!r}; this hybrid-knative reads {FORMAT}")
        files_doc = _field(doc, "files", dict, bad)
        if len(files_doc) > MAX_ENTRIES:
            raise bad(f"bundle.json lists {len(files_doc)} entries (at most {MAX_ENTRIES})")
        files: dict[str, FileEntry] = {}
        for name, value in files_doc.items():
            _check_entry_name(name, bad)
            entry = value if isinstance(value, dict) else {}
            sha, size = entry.get("sha256"), entry.get("size")
            if not isinstance(sha, str) or not _HEX.match(sha):
                raise bad(f"bundle.json has an invalid checksum for {name}")
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_ENTRY_BYTES:
                raise bad(f"bundle.json has an invalid size for {name}")
            if name.startswith(f"{OCI_DIR}/blobs/sha256/") and name.rsplit("/", 1)[1] != sha:
                raise bad(f"bundle.json: blob {name} is listed with another digest ({sha})")
            files[name] = FileEntry(sha, size)
        images = tuple(_image(item, index, bad) for index, item in enumerate(_field(doc, "images", list, bad)))
        manifests = doc.get("manifests") or []
        if not isinstance(manifests, list) or \
                not all(isinstance(d, str) and oci.DIGEST.fullmatch(d) for d in manifests):
            raise bad("bundle.json: manifests must be a list of sha256 digests")
        for digest in manifests:
            name = f"{OCI_DIR}/{oci.blob_path(digest)}"
            if name not in files or files[name].size > MAX_SMALL_BYTES:
                raise bad(f"bundle.json: manifest {digest} is missing from the entries or larger than "
                          f"{MAX_SMALL_BYTES} bytes")
        if f"{OCI_DIR}/index.json" not in files or files[f"{OCI_DIR}/index.json"].size > MAX_SMALL_BYTES:
            raise bad(f"bundle.json: {OCI_DIR}/index.json is missing or too large")
        small_total = sum(files[f"{OCI_DIR}/{oci.blob_path(d)}"].size for d in set(manifests))
        if small_total > MAX_SMALL_TOTAL:
            raise bad(f"bundle.json: its manifests add up to {small_total} bytes (at most {MAX_SMALL_TOTAL})")
        knative = _field(doc, "knative", list, bad)
        components = _field(doc, "components", dict, bad)
        arches = _field(doc, "arches", list, bad)
        if not all(isinstance(x, str) and len(x) < 100 for x in (*knative, *arches, *components.values())):
            raise bad("bundle.json: knative, arches and components must hold short strings")
        created_by = doc.get("created_by", "")
        return cls(knative=tuple(knative), components=dict(components), arches=tuple(arches), images=images,
                   files=files, manifests=tuple(manifests), created_by=str(created_by)[:200])

    def blob_names(self) -> set[str]:
        return {n for n in self.files if n.startswith(f"{OCI_DIR}/blobs/")}

    @property
    def upstream_paths(self) -> list[str]:
        return sorted(n[len(UPSTREAM_DIR) + 1:] for n in self.files if n.startswith(f"{UPSTREAM_DIR}/"))

    @property
    def bundle_id(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()


def _field(doc: Mapping[str, Any], key: str, kind: type, bad: Callable[[str], ConfigError]) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise bad(f"bundle.json: {key} is missing or not a{'n object' if kind is dict else ' list'}")
    return value


_REF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$")


def _image(item: Any, index: int, bad: Callable[[str], ConfigError]) -> BundleImage:
    where = f"images[{index}]"
    if not isinstance(item, dict):
        raise bad(f"bundle.json: {where} is not an object")
    text = {}
    for key in ("name", "ref_name", "source", "digest", "media_type"):
        value = item.get(key)
        if not isinstance(value, str) or len(value) > 1024:
            raise bad(f"bundle.json: {where}.{key} is missing or not a short string")
        text[key] = value
    where = f"image {text['name'][:200]}"
    if not oci.DIGEST.fullmatch(text["digest"]):
        raise bad(f"bundle.json: {where} has a malformed digest")
    if not _REF_NAME.match(text["ref_name"]) or not _REF_NAME.match(text["name"]):
        raise bad(f"bundle.json: {where} has a malformed name")
    plats = item.get("platforms")
    if not isinstance(plats, dict) or not all(isinstance(k, str) and len(k) < 100 and isinstance(v, str)
                                              and oci.DIGEST.fullmatch(v) for k, v in plats.items()):
        raise bad(f"bundle.json: {where} has malformed platforms")
    return BundleImage(platforms=dict(plats), **text)


def _check_entry_name(name: str, bad: Callable[[str], ConfigError]) -> None:
    if not isinstance(name, str) or not name or len(name) > 1024 or "\x00" in name:
        raise bad(f"unsafe or unexpected entry name {str(name)[:100]!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name != str(path) or \
            path.parts[0] not in (OCI_DIR, UPSTREAM_DIR) or "\\" in name:
        raise bad(f"unsafe or unexpected entry name {name!r}")


# --- create -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """Where images are pulled from: their own registries, a mirror host (``--source-registry``),
    and/or a registries.conf (containers-registries.conf(5) mirrors)."""

    registry: str | None = None  # host[:port][/prefix]; replaces each image's registry host
    insecure: bool = False  # plain HTTP / no TLS verification (only with an explicit http:// URL)
    registries_conf: Path | None = None

    @classmethod
    def parse(cls, url: str | None, registries_conf: Path | None = None) -> Source:
        if registries_conf is not None and not registries_conf.is_file():
            raise ConfigError(f"registries.conf not found: {registries_conf}",
                              resolution="pass --registries-conf with an existing file")
        if url is None:
            return cls(registries_conf=registries_conf)
        insecure = url.startswith("http://")
        host = url.removeprefix("http://").removeprefix("https://").rstrip("/")
        if not re.match(r"^[A-Za-z0-9.-]+(:\d{1,5})?(/[a-z0-9._/-]+)?$", host):
            raise ConfigError(f"not a registry URL: {url!r}",
                              resolution="use HOST[:PORT][/PREFIX], e.g. mirror.example:5000 "
                              "(http://HOST:PORT for a plain-HTTP registry)")
        return cls(registry=host, insecure=insecure, registries_conf=registries_conf)

    def location(self, image: ImageRef, *, digest: str | None = None) -> str:
        ref = image if self.registry is None else image.with_registry(self.registry)
        if digest is not None and not image.digest:
            return f"docker://{ref.repository}@{digest}"
        return f"docker://{ref}"


def layout_ref_name(image: ImageRef) -> str:
    """A name valid in an OCI layout (no '@'): the repository plus the tag, or ``sha256-<hex>``."""
    suffix = image.digest.replace(":", "-") if image.digest else (image.tag or "latest")
    return f"{image.repository}:{suffix}"


def check_arches(arches: Sequence[str]) -> tuple[str, ...]:
    if not arches:
        raise ConfigError("no architecture requested", resolution=f"pass --arch with some of {', '.join(KNOWN_ARCHES)}")
    unknown = [a for a in arches if a not in KNOWN_ARCHES]
    if unknown:
        raise ConfigError(f"unknown architecture {unknown[0]!r}",
                          resolution=f"choose from {', '.join(KNOWN_ARCHES)} (e.g. --arch amd64,arm64)")
    return tuple(dict.fromkeys(arches))


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def create(output: Path, images: Sequence[ImageRef], *, arches: Sequence[str], upstream: Sequence[tuple[str, Path]],
           knative: Sequence[str], components: dict[str, str], source: Source, runner: Runner,
           status: Status, clock: Callable[[], float] = time.monotonic,
           only_on: Mapping[ImageRef, Sequence[str]] | None = None,
           sign_key: signing.PrivateKey | None = None) -> BundleManifest:
    """Pull ``images`` into one OCI layout, add ``upstream`` files (relative path, local file), write the tar
    atomically at ``output``. Nothing is left at ``output`` (or beside it) on failure.

    ``only_on``: images that run only on some architectures (a ``kubernetes.io/arch`` node selector, e.g. the
    amd64-only ROCm device plugin) must provide only the requested architectures among those."""
    arches = check_arches(arches)
    needs = {image: _needed(image, arches, (only_on or {}).get(image)) for image in images}
    if not images:
        raise ConfigError("no images to bundle")
    check_output(output)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        layout = work / OCI_DIR
        records = _pull(layout, images, arches, source, runner, status, clock, needs)
        manifests = _annotate_and_walk(layout, records)
        with status.step(f"Add {len(upstream)} pinned upstream files"):
            for rel, path in upstream:
                dest = work / UPSTREAM_DIR / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        files = {str(p.relative_to(work).as_posix()): FileEntry(_sha256(p), p.stat().st_size)
                 for p in sorted(work.rglob("*")) if p.is_file()}
        manifest = BundleManifest(knative=tuple(knative), components=dict(components), arches=arches,
                                  images=tuple(records), files=files, manifests=tuple(sorted(manifests)))
        with status.step(f"Write {output.name} ({_human(_dir_size(work))})"):
            _pack(work, manifest, output, sign_key)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_output(output: Path) -> None:
    """Where a bundle can be written: a new or regular file in an existing folder."""
    shown = str(output)[:200]
    try:
        if output.exists() and not output.is_file():
            raise ConfigError(f"{shown} exists and is not a regular file",
                              resolution="pass -o with a file name, e.g. site.bundle")
        if not output.parent.is_dir():
            raise ConfigError(f"folder not found: {str(output.parent)[:200]}",
                              resolution="create it first, or choose another -o")
    except OSError as exc:
        raise ConfigError(f"cannot use -o {shown}: {exc.strerror}", resolution="choose another -o") from None


def _needed(image: ImageRef, arches: tuple[str, ...], only: Sequence[str] | None) -> tuple[str, ...]:
    if only is None:
        return arches
    need = tuple(a for a in arches if a in only)
    if not need:
        raise ConfigError(f"image {image} runs only on {', '.join(only)}, none of --arch {','.join(arches)}",
                          resolution=f"add {only[0]} to --arch, or leave out the option that brings this image")
    return need


def _pull(layout: Path, images: Sequence[ImageRef], arches: tuple[str, ...], source: Source, runner: Runner,
          status: Status, clock: Callable[[], float], needs: Mapping[ImageRef, tuple[str, ...]]) -> list[BundleImage]:
    records: list[BundleImage] = []
    started = clock()
    with status.step(f"Pull {len(images)} images for {', '.join(arches)} into one OCI layout"):
        for index, image in enumerate(images, start=1):
            ref_name = layout_ref_name(image)
            resolved = image.digest or resolve_digest(image, source, runner)
            # copy by digest: the tag cannot be moved between resolving and copying
            Skopeo(runner, source.registries_conf).copy(source.location(image, digest=resolved),
                                                        f"oci:{layout}:{ref_name}", retry_times=2,
                                                        src_tls_verify=not source.insecure)
            done = _dir_size(layout / "blobs") if (layout / "blobs").is_dir() else 0
            elapsed = clock() - started
            eta = elapsed / index * (len(images) - index)
            status.note(f"{index}/{len(images)} images, {_human(done)} so far, "
                        f"{_human(done / elapsed) + '/s, ' if elapsed > 0 else ''}ETA {eta:.0f}s")
            status.detail(f"pulled {image}")
            records.append(_record(layout, image, ref_name, source, needs.get(image, arches), resolved))
    return records


def resolve_digest(image: ImageRef, source: Source, runner: Runner) -> str:
    """What a tag points to right now at the source: the sha256 of its manifest (or index) as served."""
    argv: list[str | Path] = ["skopeo"]
    if source.registries_conf is not None:
        argv += ["--registries-conf", source.registries_conf]
    argv += ["inspect", "--raw", "--retry-times", "2"]
    if source.insecure:
        argv.append("--tls-verify=false")
    argv.append(source.location(image))
    result = runner.run(argv, timeout=600)
    raw = result.stdout.encode("utf-8") if isinstance(result.stdout, str) else bytes(result.stdout)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _read_blob(layout: Path) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        return (layout / oci.blob_path(digest)).read_bytes()
    return read


def _top(layout: Path, ref_name: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for desc in index.get("manifests") or []:
        if (desc.get("annotations") or {}).get(oci.REF_NAME) == ref_name:
            return dict(desc)
    raise PermanentError(f"skopeo did not store {ref_name} in the OCI layout")


def _record(layout: Path, image: ImageRef, ref_name: str, source: Source, arches: tuple[str, ...],
            resolved: str | None = None) -> BundleImage:
    top = _top(layout, ref_name)
    digest = str(top["digest"])
    expected = image.digest or resolved
    if expected and digest != expected:
        raise IntegrityError(f"{image} resolved to another digest", details=f"expected {expected}\npulled {digest}",
                             resolution="the source registry serves different content; check --source-registry")
    plats = oci.platforms(top, _read_blob(layout), what=str(image))
    have = {oci.arch_of(p) for p in plats if p.startswith("linux/")}
    for arch in arches:
        if arch not in have:
            raise ConfigError(f"image {image} has no linux/{arch} platform",
                              details=f"it has: {', '.join(sorted(plats)) or 'none'}",
                              resolution="drop that architecture from --arch, or use a source that publishes it")
    return BundleImage(name=str(image), ref_name=ref_name, source=source.location(image), digest=digest,
                       media_type=str(top.get("mediaType", "")), platforms=plats)


def _annotate_and_walk(layout: Path, records: Sequence[BundleImage]) -> set[str]:
    """Name every image for containerd (the reference the objects use); return manifest digests."""
    path = layout / "index.json"
    index = json.loads(path.read_text())
    names = {r.ref_name: r.name for r in records}
    manifests: set[str] = set()
    for desc in index.get("manifests") or []:
        ref = (desc.get("annotations") or {}).get(oci.REF_NAME)
        if ref in names:
            desc["annotations"][oci.CONTAINERD_NAME] = names[ref]
        found, _ = oci.reachable(desc, _read_blob(layout), what=str(ref))
        manifests.update(found)
    path.write_text(json.dumps(index, sort_keys=True))
    return manifests


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    return info


def _pack(work: Path, manifest: BundleManifest, output: Path,
          sign_key: signing.PrivateKey | None = None) -> None:
    """bundle.json first, its signature (if any), then manifests before layers (a verifier reads them while
    streaming)."""
    import io

    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.partial-", dir=output.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = manifest.to_json()
            tar.addfile(_tarinfo(MANIFEST, len(data)), io.BytesIO(data))
            if sign_key is not None:
                sig = signing.sign(data, sign_key)
                tar.addfile(_tarinfo(SIGNATURE, len(sig)), io.BytesIO(sig))
            small = {f"{OCI_DIR}/{oci.blob_path(d)}" for d in manifest.manifests}
            order = sorted(manifest.files, key=lambda n: (n not in (f"{OCI_DIR}/oci-layout", f"{OCI_DIR}/index.json"),
                                                          n not in small, n))
            for name in order:
                with (work / name).open("rb") as fh:
                    tar.addfile(_tarinfo(name, manifest.files[name].size), fh)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


# --- read / verify / unpack --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Unpacked:
    """A verified, unpacked bundle."""

    root: Path
    manifest: BundleManifest

    @property
    def layout(self) -> Path:
        return self.root / OCI_DIR

    @property
    def upstream_dir(self) -> Path:
        return self.root / UPSTREAM_DIR

    def top(self, image: BundleImage) -> dict[str, Any]:
        return _top(self.layout, image.ref_name)

    def blobs_of(self, image: BundleImage) -> list[str]:
        _, blobs = oci.reachable(self.top(image), _read_blob(self.layout), what=image.name)
        return blobs


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.exists():
        raise ConfigError(f"bundle not found: {path}", resolution="check the path (e.g. the USB stick is mounted)")
    if not path.is_file():
        raise ConfigError(f"not a file: {path}",
                          resolution="pass the bundle file made by `hybrid-knative bundle create`")
    try:
        return tarfile.open(path, mode="r|")
    except (tarfile.TarError, OSError):
        raise ConfigError(f"not a hybrid-knative bundle: {path}", details="it is not a tar archive",
                          resolution="pass a file made by `hybrid-knative bundle create`") from None


def read_manifest(path: Path) -> BundleManifest:
    """bundle.json only (cheap: it is the first entry). Does NOT verify the rest — see :func:`verify`."""
    with _open_tar(path) as tar:
        return _first(tar, path)[0]


def _first(tar: tarfile.TarFile, path: Path) -> tuple[BundleManifest, bytes]:
    raw = None
    try:
        member = tar.next()
        if member is not None and member.name == MANIFEST and member.isfile():
            if member.size > MAX_MANIFEST_BYTES:
                raise ConfigError(f"not a hybrid-knative bundle: {path}",
                                  details=f"bundle.json is {member.size} bytes (at most {MAX_MANIFEST_BYTES})",
                                  resolution="pass a file made by `hybrid-knative bundle create`")
            fh = tar.extractfile(member)
            raw = fh.read(MAX_MANIFEST_BYTES + 1) if fh is not None else None
    except (tarfile.TarError, OSError, EOFError):
        raw = None
    if raw is None:
        raise ConfigError(f"not a hybrid-knative bundle: {path}", details="bundle.json is not its first entry",
                          resolution="pass a file made by `hybrid-knative bundle create`")
    return BundleManifest.from_json(raw, source=str(path)), raw


def _copy_hashing(fh: IO[bytes], out: IO[bytes] | None, keep: bool) -> tuple[str, int, bytes]:
    digest = hashlib.sha256()
    size = 0
    kept = bytearray()
    for chunk in iter(lambda: fh.read(_CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
        if keep:
            kept.extend(chunk)
    return digest.hexdigest(), size, bytes(kept)


@dataclasses.dataclass
class VerifyReport:
    """What :func:`verify` found besides the manifest: who signed it (key fingerprint), if anyone."""

    signed_by: str | None = None
    trusted: bool = False


def verify(path: Path, dest: Path | None = None, *, on_entry: Callable[[str], None] | None = None,
           trusted: Sequence[signing.PublicKey] | None = None, report: VerifyReport | None = None,
           pins: Mapping[str, str] | None = None) -> BundleManifest:
    """Check every entry's sha256 and size, that nothing is missing or extra, that every image is
    complete (every blob it references is in the bundle), and that every upstream file is the one
    hybrid-knative's catalog pins (``pins``: path -> sha256; default: this version's catalog).
    With ``trusted`` keys (default: $HYBRID_KNATIVE_TRUSTED_KEYS), the bundle must carry a valid
    Ed25519 signature by one of them. With ``dest``, also writes the entries there.

    Raises IntegrityError naming the bad entry.
    """
    if trusted is None:
        trusted = signing.site_trusted_keys()
    report = report if report is not None else VerifyReport()
    with _open_tar(path) as tar:
        manifest, raw_manifest = _first(tar, path)
        check_pins(manifest, path, pins)
        wanted = {f"{OCI_DIR}/index.json"} | {f"{OCI_DIR}/{oci.blob_path(d)}" for d in manifest.manifests}
        small: dict[str, bytes] = {}
        seen: set[str] = set()
        last = MANIFEST
        try:
            member = tar.next()
            signature = None
            if member is not None and member.name == SIGNATURE and member.isfile() and member.size <= 16384:
                fh = tar.extractfile(member)
                signature = fh.read(16385) if fh is not None else b""
                last = SIGNATURE
                member = tar.next()
            report.signed_by = signing.check(raw_manifest, signature, trusted, what=f"bundle {path.name}")
            report.trusted = bool(trusted)
            while member is not None:
                name = member.name
                entry = manifest.files.get(name)
                if entry is None:
                    raise IntegrityError(f"bundle {path.name} has an unexpected entry: {name[:200]}",
                                         resolution="the bundle was modified; re-create it with `bundle create`")
                if name in seen or not member.isfile():
                    raise IntegrityError(f"bundle {path.name}: entry {name} is duplicated or not a regular file")
                if member.size != entry.size:
                    raise IntegrityError(f"bundle {path.name}: entry {name} has another size than bundle.json says",
                                         details=f"bundle.json: {entry.size} bytes, tar: {member.size} bytes",
                                         resolution="copy the bundle again (or re-create it); nothing was imported")
                seen.add(name)
                fh = tar.extractfile(member)
                assert fh is not None
                out: IO[bytes] | None = None
                if dest is not None:
                    target = dest / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    out = target.open("wb")
                try:
                    sha, size, kept = _copy_hashing(fh, out, name in wanted)
                finally:
                    if out is not None:
                        out.close()
                if sha != entry.sha256 or size != entry.size:
                    raise IntegrityError(f"bundle {path.name}: entry {name} is corrupt",
                                         details=f"expected sha256 {entry.sha256} ({entry.size} bytes)\n"
                                         f"actual   sha256 {sha} ({size} bytes)",
                                         resolution="copy the bundle again (or re-create it); nothing was imported")
                if name in wanted:
                    small[name] = kept
                last = name
                if on_entry is not None:
                    on_entry(name)
                member = tar.next()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise IntegrityError(f"bundle {path.name} is truncated or damaged after entry {last}",
                                 details=str(exc)[:500],
                                 resolution="copy the bundle again (or re-create it); nothing was imported") from None
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise IntegrityError(f"bundle {path.name} is incomplete: {len(missing)} entries missing, first {missing[0]}",
                             details="\n".join(missing[:20]),
                             resolution="copy the bundle again (or re-create it); nothing was imported")
    _check_images(manifest, small, path)
    return manifest


def catalog_pins() -> dict[str, str]:
    """Every upstream file this hybrid-knative pins: bundle path (upstream/…) -> sha256."""
    from hybrid_knative.catalog import load_catalog

    return {f"{UPSTREAM_DIR}/{f.path}": f.sha256 for f in load_catalog().all_files()}


def check_pins(manifest: BundleManifest, path: Path, pins: Mapping[str, str] | None = None) -> None:
    """Upstream files must be exactly the ones the catalog pins (a re-packed bundle with recomputed
    digests passes the self-check; it does not pass this)."""
    pins = catalog_pins() if pins is None else pins
    for name, entry in manifest.files.items():
        if not name.startswith(f"{UPSTREAM_DIR}/"):
            continue
        if name.startswith(SITE_WHEELHOUSE) and SITE_WHEELHOUSE_COMPONENT in manifest.components:
            continue
        pinned = pins.get(name)
        if pinned is None:
            raise IntegrityError(f"bundle {path.name}: {name} is not a file this hybrid-knative pins",
                                 resolution="create the bundle with the same hybrid-knative version that imports it")
        if entry.sha256 != pinned:
            raise IntegrityError(f"bundle {path.name}: {name} is not the pinned upstream file",
                                 details=f"pinned sha256 {pinned}\nbundle sha256 {entry.sha256}",
                                 resolution="the bundle was modified after it was made; re-create it with "
                                 "`bundle create`")


def _check_images(manifest: BundleManifest, small: dict[str, bytes], path: Path) -> None:
    try:
        index = json.loads(small[f"{OCI_DIR}/index.json"])
    except (ValueError, RecursionError):
        raise IntegrityError(f"bundle {path.name}: {OCI_DIR}/index.json is not valid JSON") from None
    descs = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descs, list):
        raise IntegrityError(f"bundle {path.name}: {OCI_DIR}/index.json has no list of manifests")
    tops: dict[str, dict[str, Any]] = {}
    for desc in descs:
        desc = oci.descriptor(desc, what=f"bundle {path.name}: {OCI_DIR}/index.json")
        annotations = desc.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise IntegrityError(f"bundle {path.name}: {OCI_DIR}/index.json has malformed annotations")
        ref = annotations.get(oci.REF_NAME)
        if isinstance(ref, str):
            tops[ref] = desc

    def read(digest: str) -> bytes:
        name = f"{OCI_DIR}/{oci.blob_path(digest)}"
        if name not in small:
            raise IntegrityError(f"bundle {path.name}: blob {digest} is missing")
        return small[name]

    for image in manifest.images:
        top = tops.get(image.ref_name)
        if top is None or top.get("digest") != image.digest:
            raise IntegrityError(f"bundle {path.name}: image {image.name} is missing from its OCI index",
                                 resolution="re-create the bundle with `bundle create`")
        _, blobs = oci.reachable(top, read, what=f"bundle {path.name}: image {image.name}")
        for digest in blobs:
            if f"{OCI_DIR}/{oci.blob_path(digest)}" not in manifest.files:
                raise IntegrityError(f"bundle {path.name}: image {image.name} is incomplete",
                                     details=f"blob {digest} is not in the bundle")


_UNPACKED: dict[tuple[str, str, int, int], Unpacked] = {}


def unpack(path: Path, cache_root: Path, *, trusted: Sequence[signing.PublicKey] | None = None) -> Unpacked:
    """Verify and unpack into ``cache_root/<bundle id>`` (reused when already complete).

    One unpack at a time per ``cache_root`` (an advisory lock): work folders left by a killed run
    (``.unpack-*``) are removed first."""
    path = path.resolve()
    st = path.stat() if path.is_file() else None
    key = (str(path), str(cache_root.resolve()), st.st_size, st.st_mtime_ns) if st else None
    if trusted is None and key is not None and key in _UNPACKED and (_UNPACKED[key].root / ".complete").is_file():
        return _UNPACKED[key]
    manifest = read_manifest(path)
    final = cache_root / manifest.bundle_id
    cache_root.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_root / ".unpack.lock"):
        for stale in cache_root.glob(".unpack-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if (final / ".complete").is_file():
            verify(path, trusted=trusted)  # the file itself is always checked; the unpacked copy is reused
        else:
            work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache_root))
            try:
                verify(path, work, trusted=trusted)
                (work / ".complete").write_text(manifest.bundle_id + "\n")
                shutil.rmtree(final, ignore_errors=True)
                os.replace(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    unpacked = Unpacked(final, manifest)
    if key is not None and trusted is None:
        _UNPACKED[key] = unpacked
    return unpacked


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
