"""The `--with ml` verify step end to end: a tiny model trained here, pushed to a REAL S3 store (weed),
served (KServe's controller faked on the API emulator), and its URL probed from "the host" — where the
probe reaches KServe's REAL model server on 127.0.0.1, serving the model KServe's storage library
downloaded with the settings our objects give."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hybrid_knative.components.model_store import verify_model_serving
from hybrid_knative.config import Config
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.ml import models, store
from hybrid_knative.platform.context import Context, HostFacts, RenderContext
from hybrid_knative.platform.record import Record
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import UpstreamStore
from hybrid_knative.versions import KubeVersion
from tests.harness.seaweedfs import free_port
from tests.ml.conftest import MlCluster, install_ml
from tests.ml.test_model_store import HERE, _wait_ready


def _fresh_boto3_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage initializer is a fresh process; in this test process boto3's default session would keep the
    credentials it resolved first (botocore caches them), i.e. an earlier test's store keys."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

pytestmark = pytest.mark.integration


def test_verify_step_pushes_serves_and_gets_an_answer(ml_cluster_env: MlCluster, s3: store.Settings,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = ml_cluster_env
    install_ml(env.kube, s3.credentials)
    # what kube-proxy does on a MicroK8s node: the store Service's cluster IP reaches the store
    host, port = s3.endpoint.split(":")
    service = env.server.get("v1", "services", store.SERVICE, store.NAMESPACE)
    service["spec"]["clusterIP"] = host
    service["spec"]["ports"][0]["port"] = int(port)
    env.server.put_object("v1", "services", service)

    # the predictor: KServe's model server on 127.0.0.1 with what the storage initializer downloads
    model_port = free_port()
    served: dict[str, subprocess.Popen[bytes]] = {}

    def start_predictor() -> None:
        from kserve_storage import Storage

        secret = next(o for o in store.serving_credentials("default", s3, {}) if o["kind"] == "Secret")
        with monkeypatch.context() as m:
            for key, value in store.initializer_env(secret, {"s3AccessKeyIDName": store.ACCESS_KEY_FIELD,
                                                             "s3SecretAccessKeyName": store.SECRET_KEY_FIELD}).items():
                m.setenv(key, value)
            out = Path(tempfile.mkdtemp(dir=tmp_path))
            _fresh_boto3_session(monkeypatch)
            Storage.download(models.storage_uri(s3, verify_model_serving.MODEL), str(out))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        proc = subprocess.Popen([sys.executable, str(HERE / "sklearn_server.py"), verify_model_serving.MODEL,
                                 str(out), str(model_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=clean)
        served["proc"] = proc
        _wait_ready(f"http://127.0.0.1:{model_port}/v1/models/{verify_model_serving.MODEL}", proc)

    def resolve(name: str) -> list[str]:
        if name.endswith(".hk.internal"):
            if "proc" not in served:  # the pod starts once KServe made the InferenceService Ready
                start_predictor()
            return ["127.0.0.1"]
        return []

    config = Config(kubeconfig=env.kubeconfig, verify=True, extras=("ml",), gpu="none")
    rc = RenderContext(config=config, release=None, kube_version=KubeVersion.parse("1.34"),  # type: ignore[arg-type]
                       store=UpstreamStore(), host=HostFacts())
    ctx = Context(render=rc, kube=env.kube, record=Record(tmp_path / "record.json", server="emulator"),
                  status=Status(verbosity=-1), runner=Runner(), waits=WaitPolicy(timeout=60, interval=0.05),
                  probes=HostProbes(resolve=resolve, http_port=model_port, timeout=10))
    try:
        verify_model_serving.run(ctx, [])
        assert models.verify(s3, verify_model_serving.MODEL).files
        # the check's InferenceService is removed afterwards; the model stays in the store
        assert env.server.get("serving.kserve.io/v1beta1", "inferenceservices", verify_model_serving.MODEL,
                              "default") is None
    finally:
        if "proc" in served:
            served["proc"].terminate()
            served["proc"].wait(timeout=15)
