"""GridFS backend (push + our initializer) and `model serve` rendering.

No MongoDB server is installable here (not in Debian's archive; PyPI's helpers download a server at
run time), so the pymongo GridFSBucket is the single fake: it keeps files as real chunk lists with
GridFS's semantics (revisions by upload date, latest wins; NoFile from pymongo's own gridfs.errors;
bytes or file-like sources), and records the size of every read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from gridfs.errors import NoFile

from hybrid_knative.errors import ConfigError
from hybrid_knative.ml import gridfs, gridfs_initializer, runtimes, serve
from tests.harness.validation import ManifestValidator, kserve_crds

_ids = itertools.count(1)


@dataclasses.dataclass
class FakeFile:
    _id: int
    filename: str
    chunks: list[bytes]
    chunk_size: int
    metadata: dict[str, Any]

    @property
    def length(self) -> int:
        return sum(len(c) for c in self.chunks)


class FakeStream:
    def __init__(self, f: FakeFile, reads: list[int]) -> None:
        self._data = b"".join(f.chunks)
        self._pos = 0
        self.length = f.length
        self.chunk_size = f.chunk_size
        self._reads = reads
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        assert not self.closed
        self._reads.append(size)
        end = len(self._data) if size < 0 else self._pos + size
        out = self._data[self._pos:end]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self.closed = True


class FakeGridFSBucket:
    def __init__(self) -> None:
        self.files: list[FakeFile] = []
        self.reads: list[int] = []

    def upload_from_stream(self, filename: str, source: Any, chunk_size_bytes: int | None = None,
                           metadata: dict[str, Any] | None = None) -> int:
        size = chunk_size_bytes or 255 * 1024
        data = source if isinstance(source, bytes) else source.read()
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        f = FakeFile(next(_ids), filename, chunks, size, dict(metadata or {}))
        self.files.append(f)
        return f._id

    def find(self, filter: dict[str, Any]) -> list[FakeFile]:
        (key, value), = filter.items()
        assert key == "metadata.model"
        return [f for f in self.files if f.metadata.get("model") == value]

    def delete(self, file_id: int) -> None:
        before = len(self.files)
        self.files = [f for f in self.files if f._id != file_id]
        if len(self.files) == before:
            raise NoFile(file_id)

    def open_download_stream_by_name(self, filename: str, revision: int = -1) -> FakeStream:
        found = [f for f in self.files if f.filename == filename]
        if not found:
            raise NoFile(f"no version {revision} for filename {filename!r}")
        return FakeStream(found[revision], self.reads)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    (folder / "shards").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "shards" / "w-0.bin").write_bytes(os.urandom(9 * 1024 * 1024 + 17))  # spans chunks
    return folder


def test_push_then_initializer_writes_verified_files(model_dir: Path, tmp_path: Path) -> None:
    bucket = FakeGridFSBucket()
    manifest = gridfs.push(bucket, model_dir, "llm")
    assert all(f.chunk_size == gridfs.CHUNK_SIZE for f in bucket.files)
    out = tmp_path / "mnt-models"
    written = gridfs_initializer.download(bucket, "llm", out)
    assert written == manifest.size
    for entry in manifest.files:
        assert hashlib.sha256((out / entry.path).read_bytes()).hexdigest() == entry.sha256
    assert min(r for r in bucket.reads if r > 0) >= gridfs_initializer.MIN_READ
    assert not list(out.rglob(".*.partial"))


def test_repush_keeps_only_the_latest_revision(model_dir: Path) -> None:
    bucket = FakeGridFSBucket()
    gridfs.push(bucket, model_dir, "llm")
    (model_dir / "config.json").write_text('{"layers": 3}')
    gridfs.push(bucket, model_dir, "llm")
    assert sorted(f.filename for f in bucket.files) == ["llm/config.json", "llm/hk-manifest.json",
                                                        "llm/shards/w-0.bin"]


def test_initializer_refuses_corrupt_and_missing(model_dir: Path, tmp_path: Path) -> None:
    bucket = FakeGridFSBucket()
    gridfs.push(bucket, model_dir, "llm")
    shard = next(f for f in bucket.files if f.filename == "llm/shards/w-0.bin")
    shard.chunks[1] = bytes(len(shard.chunks[1]))  # same size, different bytes
    out = tmp_path / "out"
    with pytest.raises(gridfs_initializer.InitializerError, match="sha256/size mismatch"):
        gridfs_initializer.download(bucket, "llm", out)
    assert not (out / "shards" / "w-0.bin").exists()
    with pytest.raises(gridfs_initializer.InitializerError, match="no manifest"):
        gridfs_initializer.download(bucket, "other", out)
    bucket.files = [f for f in bucket.files if f.filename != "llm/config.json"]
    shard.chunks[1] = b""  # irrelevant now: config.json is checked first (sorted manifest)
    with pytest.raises(gridfs_initializer.InitializerError):
        gridfs_initializer.download(bucket, "llm", tmp_path / "out2")


def test_initializer_refuses_paths_outside_and_small_chunks(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(gridfs_initializer.InitializerError):
        gridfs_initializer._safe_target(tmp_path, "../etc/passwd")
    with pytest.raises(ConfigError, match="at least 4 MiB"):
        gridfs.push(FakeGridFSBucket(), model_dir, "llm", chunk_size=255 * 1024)


def test_initializer_cli_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert gridfs_initializer.main(["only-one"]) == 2
    assert gridfs_initializer.main(["s3://x/y", "/tmp/out"]) == 1
    assert "not a gridfs:// URI" in capsys.readouterr().err
    assert gridfs_initializer.parse_uri("gridfs://weights/llm?bucket=b") == ("weights", "llm", "b")
    assert gridfs.uri("weights", "llm") == "gridfs://weights/llm"


def test_storage_container_is_valid() -> None:
    csc = gridfs.storage_container(labels={"app.kubernetes.io/managed-by": "hybrid-knative"})
    assert csc["spec"]["container"]["name"] == "storage-initializer"
    assert ManifestValidator("1.34", kserve_crds()).errors(csc) == []


# ---------------------------------------------------------------------------------------- serve


def test_cpu_model_in_knative_mode_with_the_store_account() -> None:
    req = serve.ServeRequest(name="iris", namespace="default", runtime=runtimes.runtime("sklearn"),
                             storage_uri="s3://models/iris/", digest="ab" * 32)
    isvc = serve.render_inference_service(req)
    pred = isvc["spec"]["predictor"]
    assert pred["serviceAccountName"] == "hk-model-store"
    assert pred["model"]["runtime"] == "kserve-sklearnserver"
    assert serve.DEPLOYMENT_MODE not in isvc["metadata"].get("annotations", {})
    assert isvc["metadata"]["labels"][serve.PROJECT_LABEL] == "default"
    assert "app.kubernetes.io/managed-by" not in isvc["metadata"]["labels"]  # users' object
    assert ManifestValidator("1.34", kserve_crds()).errors(isvc) == []


def test_gpu_model_defaults_to_standard_recreate() -> None:
    rt = runtimes.runtime("vllm-rocm")
    gpus = serve.check_gpu(rt, 0, cluster_gpus=1)
    req = serve.ServeRequest(name="llm", namespace="ml", runtime=rt, storage_uri="s3://models/qwen/", gpus=gpus,
                             render_gid=110)
    isvc = serve.render_inference_service(req)
    assert isvc["metadata"]["annotations"][serve.DEPLOYMENT_MODE] == "Standard"
    assert isvc["spec"]["predictor"]["deploymentStrategy"] == {"type": "Recreate"}
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["amd.com/gpu"] == "1"
    assert serve.gpu_warning(req) is None
    kn = dataclasses.replace(req, knative_for_gpu=True)
    kisvc = serve.render_inference_service(kn)
    assert kisvc["spec"]["predictor"]["annotations"]["serving.knative.dev/progress-deadline"] == "1800s"
    assert serve.gpu_warning(kn)
    validator = ManifestValidator("1.34", kserve_crds())
    assert validator.errors(isvc) == [] and validator.errors(kisvc) == []


def test_gpu_refusals() -> None:
    with pytest.raises(ConfigError, match="no node of this cluster offers"):
        serve.check_gpu(runtimes.runtime("vllm-rocm"), 1, cluster_gpus=0)
    with pytest.raises(ConfigError, match="only 1"):
        serve.check_gpu(runtimes.runtime("pytorch-rocm"), 2, cluster_gpus=1)
    with pytest.raises(ConfigError, match="runs on CPU"):
        serve.check_gpu(runtimes.runtime("sklearn"), 1, cluster_gpus=4)
    nodes = [{"status": {"allocatable": {"amd.com/gpu": "2"}}}, {"status": {"allocatable": {"cpu": "4"}}}]
    assert serve.cluster_gpus(nodes) == 2


def test_uri_schemes() -> None:
    assert serve.check_uri("pvc://models-pvc/iris", gridfs_enabled=False)
    assert serve.check_uri("oci://localhost:32000/models/iris:1", gridfs_enabled=False)
    with pytest.raises(ConfigError, match="GridFS backend"):
        serve.check_uri("gridfs://w/llm", gridfs_enabled=False)
    with pytest.raises(ConfigError, match="unsupported model URI"):
        serve.check_uri("ftp://x", gridfs_enabled=True)
    isvc = serve.render_inference_service(serve.ServeRequest(
        name="llm", namespace="default", runtime=runtimes.runtime("huggingface"), storage_uri="gridfs://w/llm"))
    assert isvc["spec"]["predictor"]["storageContainerName"] == "hk-gridfs"
    assert "serviceAccountName" not in isvc["spec"]["predictor"]
