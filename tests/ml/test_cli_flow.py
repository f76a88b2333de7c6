"""The ML commands end to end: real S3 store (weed), real lightkube against the API emulator with KServe's
and Knative's controllers faked strictly; bad input always a clear error and a non-zero exit, no traceback."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from hybrid_knative.cli.main import cli
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.ml import cluster, models, pki, store
from tests.harness.seaweedfs import free_port
from tests.ml.conftest import MlCluster, install_ml

pytestmark = pytest.mark.integration


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    folder = tmp_path / "iris-model"
    folder.mkdir()
    x, y = load_iris(return_X_y=True)
    joblib.dump(DecisionTreeClassifier(max_depth=3).fit(x, y), folder / "model.joblib")
    return folder


def test_push_serve_list_and_refusals(ml_cluster_env: MlCluster, s3: store.Settings, model_dir: Path) -> None:
    env = ml_cluster_env
    install_ml(env.kube, s3.credentials)
    common = [*env.cli_args(), "--store-endpoint", s3.endpoint]

    pushed = run("model", "push", str(model_dir), "--name", "iris", *common)
    assert pushed.exit_code == 0, pushed.output
    assert "storage URI: s3://models/iris/" in pushed.output

    served = run("model", "serve", "iris", "--runtime", "sklearn", *common)
    assert served.exit_code == 0, served.output
    assert "http://iris-predictor.default.hk.internal" in served.output
    isvc = env.server.get("serving.kserve.io/v1beta1", "inferenceservices", "iris", "default")
    assert isvc is not None
    digest = models.fetch_manifest(s3, "iris").digest
    assert isvc["metadata"]["annotations"]["hybrid-knative.dev/model-digest"] == digest
    secret = env.server.get("v1", "secrets", store.SERVING_SECRET, "default")
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == store.cluster_endpoint()

    listed = run("model", "list", *common)
    assert listed.exit_code == 0 and "iris" in listed.output

    unknown = run("model", "serve", "iris", "--runtime", "tensorflw", *common)
    assert unknown.exit_code == 2 and "unknown runtime 'tensorflw'" in unknown.output

    no_gpu = run("model", "serve", "llm", "--runtime", "vllm-rocm", "--uri", "s3://models/llm/", *common)
    assert no_gpu.exit_code == 2 and "needs an AMD GPU" in no_gpu.output

    missing = run("model", "push", str(model_dir / "nope"), "--name", "x", *common)
    assert missing.exit_code == 2 and "does not exist" in missing.output

    closed = run("model", "push", str(model_dir), "--name", "iris",
                 *env.cli_args(), "--store-endpoint", f"127.0.0.1:{free_port()}")
    assert closed.exit_code == 1 and "unreachable" in closed.output

    models.client(s3).put_object(Bucket=s3.bucket, Key="iris/model.joblib",
                                 Body=os.urandom((model_dir / "model.joblib").stat().st_size))
    tampered = run("model", "serve", "iris", "--runtime", "sklearn", *common)
    assert tampered.exit_code == 1
    assert "does not match its sha256 manifest: refusing to serve it" in tampered.output

    not_pushed = run("model", "serve", "ghost", "--runtime", "sklearn", *common)
    assert not_pushed.exit_code == 2 and "push it first" in not_pushed.output


def test_serve_without_the_store_installed(ml_cluster_env: MlCluster) -> None:
    result = run("model", "list", *ml_cluster_env.cli_args())
    assert result.exit_code == 2 and "model store is not installed" in result.output


def test_dry_run_prints_a_gpu_isvc(ml_cluster_env: MlCluster, s3: store.Settings) -> None:
    env = ml_cluster_env
    install_ml(env.kube, s3.credentials)
    node = env.server.get("v1", "nodes", "node-1")
    node["status"]["allocatable"] = {"amd.com/gpu": "1"}
    node["metadata"]["annotations"] = {"hybrid-knative.io/render-gid": "110"}
    env.server.put_object("v1", "nodes", node)
    result = run("model", "serve", "llm", "--runtime", "vllm-rocm", "--uri", "pvc://weights/qwen", "--dry-run",
                 *env.cli_args())
    assert result.exit_code == 0, result.output
    isvc = yaml.safe_load(result.output)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert isvc["spec"]["predictor"]["securityContext"] == {"supplementalGroups": [110]}


def test_certs_rotate_updates_secret_and_every_webhook(ml_cluster_env: MlCluster, s3: store.Settings) -> None:
    env = ml_cluster_env
    before = install_ml(env.kube, s3.credentials)
    status = run("certs", "status", *env.cli_args())
    assert status.exit_code == 0 and "kserve: ok" in status.output
    rotated = run("certs", "rotate", "--component", "kserve", *env.cli_args())
    assert rotated.exit_code == 0 and "kserve: re-issued" in rotated.output
    after = cluster.current_pki(env.kube, pki.KSERVE)
    assert after is not None and after.cert_pem != before.cert_pem and after.ca_cert_pem == before.ca_cert_pem
    hooks = [h for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
             for c in env.server.list("admissionregistration.k8s.io/v1", kind) for h in c["webhooks"]]
    assert len(hooks) == 7
    assert {base64.b64decode(h["clientConfig"]["caBundle"]) for h in hooks} == {after.ca_bundle}
    due = run("certs", "rotate", "--if-due", *env.cli_args())
    assert due.exit_code == 0 and "kserve: still good" in due.output
    assert env.kube.get(ObjectRef("v1", "Secret", "kserve", "kserve-webhook-ca")) is not None


def test_train_example_and_bad_values() -> None:
    ok = run("train", "example", "--rocm", "--workers", "2", "--render-gid", "110")
    job = yaml.safe_load(ok.output)
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    bad = run("train", "example", "--workers", "-1")
    assert bad.exit_code == 2
