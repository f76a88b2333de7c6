"""Models in the S3 store: push a directory with a sha256 manifest, verify it, list what is there.

Layout in the bucket: ``<name>/<relative path>`` for every file (object metadata ``sha256``), and
``<name>/hk-manifest.json`` written LAST — a model without a manifest is an interrupted push and is
neither listed nor served. The storage URI KServe gets is ``s3://<bucket>/<name>/``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError, IntegrityError, PermanentError, TemporaryError
from hybrid_knative.ml.store import Settings

MANIFEST = "hk-manifest.json"
MANIFEST_FORMAT = "hybrid-knative/model-manifest/v1"
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")
PART_SIZE = 16 * 1024 * 1024
READ_SIZE = 4 * 1024 * 1024
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(f"invalid model name {name!r}",
                          resolution="use lowercase letters, digits and '-', starting with a letter (≤ 42 "
                          "characters): it becomes the InferenceService's name")
    return name


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class ModelManifest:
    name: str
    files: tuple[FileEntry, ...]
    created: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def digest(self) -> str:
        """One sha256 for the whole model (over the sorted per-file lines)."""
        lines = "".join(f"{f.sha256}  {f.path}\n" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(lines.encode()).hexdigest()

    def to_json(self) -> bytes:
        return json.dumps({"format": MANIFEST_FORMAT, "name": self.name, "created": self.created,
                           "digest": self.digest,
                           "files": [dataclasses.asdict(f) for f in self.files]}, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> ModelManifest:
        try:
            doc = json.loads(raw)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            files = tuple(FileEntry(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
                          for f in doc["files"])
            manifest = cls(name=str(doc["name"]), files=files, created=str(doc.get("created", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"the manifest of {where} is unreadable: {exc}",
                                 resolution="push the model again") from None
        if manifest.digest != doc.get("digest"):
            raise IntegrityError(f"the manifest of {where} does not match its own digest",
                                 resolution="push the model again") from None
        return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(READ_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_files(folder: Path) -> Iterator[tuple[str, Path]]:
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith(".") or fname == MANIFEST:
                continue
            path = Path(dirpath) / fname
            real = path.resolve()
            if not real.is_file():
                continue
            if root not in real.parents:
                raise ConfigError(f"{path} links outside the model directory",
                                  resolution="copy the file into the directory instead of linking it")
            yield path.relative_to(root).as_posix(), real


def _listed_files(folder: Path) -> list[tuple[str, Path]]:
    """The model files of a local directory (missing/empty directory → ConfigError)."""
    if not folder.exists():
        raise ConfigError(f"model directory {folder} does not exist",
                          resolution="pass the folder that holds the model files (e.g. model.joblib)")
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a directory", resolution="pass the folder that holds the model files")
    files = list(_model_files(folder))
    if not files:
        raise ConfigError(f"model directory {folder} has no files", resolution="put the model files in it first")
    return files


def _created(now: datetime.datetime | None) -> str:
    return (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(folder: Path, name: str, *, now: datetime.datetime | None = None) -> ModelManifest:
    """The manifest of a local model directory (missing/empty directory → ConfigError)."""
    check_name(name)
    entries = tuple(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_of(path))
                    for rel, path in _listed_files(folder))
    return ModelManifest(name=name, files=entries, created=_created(now))


def client(settings: Settings) -> Any:
    """A boto3 S3 client for the store (path-style addressing, bounded timeouts and retries)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("the model commands need boto3, which is not installed here",
                          resolution="install the ML extra: `pip install 'hybrid-knative[ml]'` (the snap has it)"
                          ) from None

    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"}, signature_version="s3v4")
    return boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
                        aws_access_key_id=settings.credentials.access_key,
                        aws_secret_access_key=settings.credentials.secret_key, config=config,
                        verify=settings.use_https)


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=4,
                          use_threads=True)


def store_error(exc: Exception, settings: Settings, what: str) -> HybridError:
    """A boto3/botocore exception as an error the user can act on (never a traceback)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError | ConnectionError) or type(exc).__name__ in (
            "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return TemporaryError(f"the model store at {settings.endpoint_url} is unreachable ({what})",
                              details=str(exc),
                              resolution="check that the cluster runs it: `hybrid-knative status` (component "
                              "model-store), or pass --store-endpoint")
    if isinstance(exc, NoCredentialsError):
        return ConfigError("no credentials for the model store", resolution="run on a cluster node as root")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return PermanentError(f"the model store refused the credentials ({what}): {code}",
                                  resolution="the store's Secret may have been replaced; re-run enable --with ml")
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            return ConfigError(f"not in the model store: {what}",
                               resolution="push it first: `hybrid-knative model push DIR --name NAME`; "
                               "`hybrid-knative model list` shows what is there")
        return PermanentError(f"the model store failed ({what}): {code or exc}")
    return PermanentError(f"the model store failed ({what}): {exc}")


def _ensure_bucket(s3: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=settings.bucket)


def push(settings: Settings, folder: Path, name: str, *, progress: Progress = _quiet,
         s3: Any = None) -> ModelManifest:
    """Upload ``folder`` as model ``name``: files first (with their sha256 as metadata), the manifest last.

    Each file is hashed before its upload starts (the sha256 goes with the upload as metadata), but by a
    worker thread running ahead of the uploads: file N+1 is hashed while file N is on the wire (hashlib
    releases the GIL), so only the first file's hash is on the critical path.
    """
    check_name(name)
    files = _listed_files(folder)
    created = _created(None)
    entries: list[FileEntry] = []
    hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hk-model-sha256")
    try:
        hashes = [hasher.submit(sha256_of, path) for _, path in files]
        sizes = [path.stat().st_size for _, path in files]
        total = sum(sizes)
        s3 = s3 or client(settings)
        _ensure_bucket(s3, settings)
        config = _transfer_config()
        done = 0
        for (rel, path), size, pending in zip(files, sizes, hashes, strict=True):
            entry = FileEntry(path=rel, size=size, sha256=_hash_result(pending, folder))
            progress(f"{entry.path} ({_human(entry.size)}; {_human(done)} of {_human(total)} done)")
            s3.upload_file(str(path), settings.bucket, f"{name}/{entry.path}",
                           ExtraArgs={"Metadata": {"sha256": entry.sha256}}, Config=config)
            entries.append(entry)
            done += entry.size
        manifest = ModelManifest(name=name, files=tuple(entries), created=created)
        _delete_stale(s3, settings, name, {f"{name}/{f.path}" for f in manifest.files} | {f"{name}/{MANIFEST}"})
        s3.put_object(Bucket=settings.bucket, Key=f"{name}/{MANIFEST}", Body=manifest.to_json(),
                      ContentType="application/json", Metadata={"sha256": manifest.digest})
    except HybridError:
        raise
    except Exception as exc:
        raise store_error(exc, settings, f"push {name}") from None
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)  # after a failure: no hashing of the remaining files
    return manifest


def _hash_result(pending: concurrent.futures.Future[str], folder: Path) -> str:
    try:
        return pending.result()
    except OSError as exc:
        raise ConfigError(f"cannot read the model directory {folder}: {exc.strerror or exc}",
                          resolution="check the files' permissions; do not change the folder during a push"
                          ) from None


def _objects(s3: Any, settings: Settings, prefix: str) -> Iterator[dict[str, Any]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix):
        yield from page.get("Contents") or []


def _delete_stale(s3: Any, settings: Settings, name: str, keep: set[str]) -> None:
    """Files a previous push of the same name left behind would end up in /mnt/models: remove them."""
    stale = [o["Key"] for o in _objects(s3, settings, f"{name}/") if o["Key"] not in keep]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=settings.bucket,
                          Delete={"Objects": [{"Key": k} for k in stale[start:start + 1000]], "Quiet": True})


def fetch_manifest(settings: Settings, name: str, *, s3: Any = None) -> ModelManifest:
    check_name(name)
    try:
        s3 = s3 or client(settings)
        raw = s3.get_object(Bucket=settings.bucket, Key=f"{name}/{MANIFEST}")["Body"].read()
    except Exception as exc:
        raise store_error(exc, settings, f"model {name!r}") from None
    manifest = ModelManifest.from_json(raw, where=f"model {name!r}")
    if manifest.name != name:
        raise IntegrityError(f"the manifest of {name!r} names another model ({manifest.name!r})",
                             resolution="push the model again")
    return manifest


def verify(settings: Settings, name: str, *, full: bool = True, progress: Progress = _quiet,
           s3: Any = None) -> ModelManifest:
    """Check the stored model against its manifest; ``full`` re-hashes every byte (else sizes + recorded sha256).

    Raises IntegrityError (refuse to serve) on any difference: a missing, extra, resized or changed file.
    """
    try:
        s3 = s3 or client(settings)
        manifest = fetch_manifest(settings, name, s3=s3)
        listed = {o["Key"].removeprefix(f"{name}/"): int(o["Size"]) for o in _objects(s3, settings, f"{name}/")}
        listed.pop(MANIFEST, None)
        expected = {f.path: f for f in manifest.files}
        problems = [f"missing: {p}" for p in sorted(set(expected) - set(listed))]
        problems += [f"not in the manifest: {p}" for p in sorted(set(listed) - set(expected))]
        problems += [f"size differs: {p} ({listed[p]} bytes, manifest {expected[p].size})"
                     for p in sorted(set(listed) & set(expected)) if listed[p] != expected[p].size]
        if not problems:
            for entry in manifest.files:
                key = f"{name}/{entry.path}"
                if full:
                    progress(f"sha256 {entry.path} ({_human(entry.size)})")
                    actual = _hash_object(s3, settings, key)
                else:
                    actual = s3.head_object(Bucket=settings.bucket, Key=key).get("Metadata", {}).get("sha256", "")
                if actual != entry.sha256:
                    problems.append(f"sha256 mismatch: {entry.path} (store {actual or 'none'}, "
                                    f"manifest {entry.sha256})")
    except HybridError:
        raise
    except Exception as exc:
        raise store_error(exc, settings, f"verify {name}") from None
    if problems:
        raise IntegrityError(f"model {name!r} in the store does not match its sha256 manifest: refusing to serve it",
                             details="\n".join(problems[:20]),
                             resolution=f"push it again: `hybrid-knative model push DIR --name {name}`")
    return manifest


def _hash_object(s3: Any, settings: Settings, key: str) -> str:
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(READ_SIZE), b""):
        digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class StoredModel:
    name: str
    files: int
    size: int
    created: str
    digest: str


def list_models(settings: Settings, *, s3: Any = None) -> list[StoredModel]:
    """Models with a manifest (complete pushes), by name."""
    out: list[StoredModel] = []
    try:
        s3 = s3 or client(settings)
        try:
            s3.head_bucket(Bucket=settings.bucket)
        except Exception as exc:
            err = store_error(exc, settings, f"bucket {settings.bucket}")
            if isinstance(err, ConfigError):
                return []  # nothing pushed yet
            raise err from None
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Delimiter="/"):
            for prefix in page.get("CommonPrefixes") or []:
                name = str(prefix["Prefix"]).rstrip("/")
                try:
                    m = fetch_manifest(settings, name, s3=s3)
                except HybridError:
                    continue  # interrupted push or a foreign folder
                out.append(StoredModel(name=m.name, files=len(m.files), size=m.size, created=m.created,
                                       digest=m.digest))
    except HybridError:
        raise
    except Exception as exc:
        raise store_error(exc, settings, "list models") from None
    return sorted(out, key=lambda m: m.name)


def storage_uri(settings: Settings, name: str) -> str:
    return f"s3://{settings.bucket}/{check_name(name)}/"


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
