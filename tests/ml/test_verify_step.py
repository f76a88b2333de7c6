"""The `--with ml` verify step: the check model is made by a Job INSIDE the cluster (KServe's sklearn runtime
image), served, and must answer a real prediction from the host.

Real parts: the Job's program (the exact ``python -c`` text of the rendered Job, with the environment the
kubelet would give it from the store's Secret) runs here against a REAL S3 store (weed); KServe's storage
library downloads the result with the settings our objects give; KServe's model server (PyPI ``kserve``,
sklearnserver's logic) serves it on 127.0.0.1 and answers the exact predict request the step sends.
Faked: the kube-apiserver and controllers (the API emulator, KServe's controller strictly), kube-proxy
(the store's Service name → weed's address).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from hybrid_knative.components.model_store import verify_model_serving as step
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError, PermanentError, TemporaryError
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.ml import kserve, models, serve, store, tiny_model_job
from hybrid_knative.platform.context import Context, HostFacts, RenderContext
from hybrid_knative.platform.record import Record
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import UpstreamStore
from hybrid_knative.versions import KubeVersion
from tests.harness.emulator.store import Store
from tests.harness.seaweedfs import free_port
from tests.harness.validation import ManifestValidator
from tests.ml.conftest import MlCluster, install_ml
from tests.ml.test_model_store import HERE, _wait_ready

pytestmark = pytest.mark.integration
SKLEARN_IMAGE = next(c["image"] for rt in kserve.render_runtimes(UpstreamStore(), {})
                     if rt["metadata"]["name"] == step.SKLEARN_RUNTIME for c in rt["spec"]["containers"])


def _fresh_boto3_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage initializer is a fresh process; in this test process boto3's default session would keep the
    credentials it resolved first (botocore caches them), i.e. an earlier test's store keys."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def run_job_program(job: Mapping[str, Any], secret_data: Mapping[str, str], s3: store.Settings,
                    termination_log: Path) -> subprocess.CompletedProcess[str]:
    """What the kubelet does with the Job's pod: its command, its env (secretKeyRefs resolved from the
    Secret's data); the Service name in the endpoint is reached at weed's address (kube-proxy's part)."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HK_TERMINATION_LOG": str(termination_log)}
    for var in container["env"]:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == store.SERVER_SECRET
            env[var["name"]] = base64.b64decode(secret_data[ref["key"]]).decode()
        else:
            env[var["name"]] = var["value"]
    assert env["S3_ENDPOINT_URL"] == f"http://{store.cluster_endpoint()}"
    env["S3_ENDPOINT_URL"] = s3.endpoint_url
    env["HOME"] = str(termination_log.parent)  # the pod's /tmp emptyDir
    assert container["command"][0] == "python"
    return subprocess.run([sys.executable, *container["command"][1:]], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


class Predictor:
    """The predictor pod: KServe's storage library downloads the model with the initializer's environment,
    then KServe's model server serves it on 127.0.0.1."""

    def __init__(self, s3: store.Settings, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.s3, self.workdir, self.monkeypatch = s3, workdir, monkeypatch
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from kserve_storage import Storage

        secret = next(o for o in store.serving_credentials("default", self.s3, {}) if o["kind"] == "Secret")
        with self.monkeypatch.context() as m:
            for key, value in store.initializer_env(secret, {"s3AccessKeyIDName": store.ACCESS_KEY_FIELD,
                                                             "s3SecretAccessKeyName": store.SECRET_KEY_FIELD}).items():
                m.setenv(key, value)
            out = Path(tempfile.mkdtemp(dir=self.workdir))
            _fresh_boto3_session(self.monkeypatch)
            Storage.download(models.storage_uri(self.s3, step.MODEL), str(out))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "sklearn_server.py"), step.MODEL, str(out),
                                      str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean)
        _wait_ready(f"http://127.0.0.1:{self.port}/v1/models/{step.MODEL}", self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture()
def predictor(s3: store.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Predictor]:
    p = Predictor(s3, tmp_path, monkeypatch)
    try:
        yield p
    finally:
        p.stop()


# ------------------------------------------------------------------------------------------ the Job object

@pytest.mark.parametrize("kube_version", ["1.34", "1.36"])
def test_the_job_is_a_valid_strict_kubernetes_object(kube_version: str) -> None:
    job = step.model_job(SKLEARN_IMAGE, name=step.job_name("x"), deadline=300)
    assert ManifestValidator(kube_version).validate_all([job]) == []
    assert job["metadata"]["namespace"] == store.NAMESPACE  # where the store's Secret is
    assert job["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "hybrid-knative",
                                         "hybrid-knative.dev/component": "model-store"}
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == SKLEARN_IMAGE == "kserve/sklearnserver:v0.20.0"
    # the whole program, and nothing from this host's Python: it runs with the image's scikit-learn
    assert container["command"] == ["python", "-c", Path(tiny_model_job.__file__).read_text()]
    keys = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v}
    assert keys == {store.ACCESS_KEY_FIELD: {"name": store.SERVER_SECRET, "key": store.ACCESS_KEY_FIELD},
                    store.SECRET_KEY_FIELD: {"name": store.SERVER_SECRET, "key": store.SECRET_KEY_FIELD}}
    assert not any(v.get("value") for v in container["env"] if "KEY" in v["name"])  # keys only by reference
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0 and job["spec"]["activeDeadlineSeconds"] == 300
    assert step.job_name("a") != step.job_name("b") and step.job_name("a").startswith(step.JOB_PREFIX)


def test_the_job_program_keeps_the_manifest_format() -> None:
    assert (tiny_model_job.MANIFEST, tiny_model_job.MANIFEST_FORMAT) == (models.MANIFEST, models.MANIFEST_FORMAT)
    assert tiny_model_job.FEATURES[tiny_model_job.LABELS.index(step.EXPECTED_PREDICTIONS[0])] == \
        step.PREDICT_REQUEST["instances"][0]
    assert "hybrid_knative" not in Path(tiny_model_job.__file__).read_text().split('"""', 2)[2]


# -------------------------------------------------------------- the Job's program for real, then served

def test_the_job_program_makes_a_model_the_model_server_answers(s3: store.Settings, tmp_path: Path,
                                                                predictor: Predictor) -> None:
    job = step.model_job(SKLEARN_IMAGE, name=step.job_name("real"), deadline=300)
    secret = next(o for o in store.render(s3.credentials, {}) if o["metadata"]["name"] == store.SERVER_SECRET)
    # an earlier push of the same name left a file: it must not end up in /mnt/models
    models.client(s3).put_object(Bucket=s3.bucket, Key=f"{step.MODEL}/old.pkl", Body=b"stale")
    log = tmp_path / "termination-log"
    done = run_job_program(job, secret["data"], s3, log)
    assert done.returncode == 0, done.stderr
    summary = json.loads(log.read_text())
    manifest = models.verify(s3, step.MODEL, full=True)  # our own manifest reader accepts it, every byte checked
    assert [f.path for f in manifest.files] == ["model.joblib"]
    assert summary["digest"] == manifest.digest and summary["bytes"] == manifest.size
    import sklearn

    assert summary["sklearn"] == sklearn.__version__  # made by the scikit-learn that ran the program

    predictor.start()
    answer = requests.post(f"http://127.0.0.1:{predictor.port}/v1/models/{step.MODEL}:predict",
                           json=step.PREDICT_REQUEST, timeout=10)
    step.check_answer(answer.status_code, answer.text)  # the step's own judgement of the answer
    assert answer.json() == {"predictions": step.EXPECTED_PREDICTIONS}


def test_the_job_program_fails_without_the_store(tmp_path: Path) -> None:
    job = step.model_job(SKLEARN_IMAGE, name=step.job_name("down"), deadline=300)
    creds = store.Credentials.generate()
    secret = next(o for o in store.render(creds, {}) if o["metadata"]["name"] == store.SERVER_SECRET)
    nowhere = store.Settings(endpoint=f"127.0.0.1:{free_port()}", credentials=creds)
    done = run_job_program(job, secret["data"], nowhere, tmp_path / "log")
    assert done.returncode != 0 and not (tmp_path / "log").exists()


def test_wrong_or_missing_answers() -> None:
    step.check_answer(200, json.dumps({"predictions": [1]}))
    with pytest.raises(PermanentError, match="expected predictions"):
        step.check_answer(200, json.dumps({"predictions": [2]}))
    with pytest.raises(PermanentError):
        step.check_answer(200, "<html>not a model server</html>")
    with pytest.raises(TemporaryError, match="HTTP 503"):
        step.check_answer(503, "")


# ----------------------------------------------------------------------------- the step on the emulator

def kubelet_runs_model_jobs(env: MlCluster, s3: store.Settings, workdir: Path) -> Callable[[Store], None]:
    """A hook: each check-model Job created on the emulator is run for real (once), with the Secret the
    emulator holds; a failing program fails the Job like the Job controller reports it."""
    ran: dict[str, str] = {}

    def hook(db: Store) -> None:
        for job in db.view("batch/v1", "jobs", store.NAMESPACE):
            name = job["metadata"]["name"]
            if not name.startswith(step.JOB_PREFIX):
                continue
            if name not in ran:
                secret = db.peek("v1", "secrets", store.SERVER_SECRET, store.NAMESPACE) or {}
                log = workdir / f"{name}.log"
                done = run_job_program(job, secret.get("data") or {}, s3, log)
                ran[name] = log.read_text() if done.returncode == 0 and log.exists() else ""
                if not ran[name]:
                    env.controller.failing_jobs.add(name)
                    env.controller.reconcile(db)
            for pod in db.view("v1", "pods", store.NAMESPACE):
                if (pod["metadata"].get("labels") or {}).get("job-name") != name or not ran[name]:
                    continue
                status = json.loads(json.dumps(pod.get("status") or {}))
                for cs in status.get("containerStatuses") or []:
                    terminated = (cs.get("state") or {}).get("terminated")
                    if terminated is not None and terminated.get("message") != ran[name]:
                        terminated["message"] = ran[name]
                        db.set_status("v1", "pods", pod["metadata"]["name"], store.NAMESPACE, status)

    return hook


def _context(env: MlCluster, tmp_path: Path, probes: HostProbes, timeout: float = 60) -> Context:
    (tmp_path / "host").mkdir(exist_ok=True)  # a temporary host root: never the real host's DNS configuration
    config = Config(kubeconfig=env.kubeconfig, verify=True, extras=("ml",), gpu="none", host_root=tmp_path / "host")
    rc = RenderContext(config=config, release=None, kube_version=KubeVersion.parse("1.34"),  # type: ignore[arg-type]
                       store=UpstreamStore(), host=HostFacts())
    return Context(render=rc, kube=env.kube, record=Record(tmp_path / "record.json", server="emulator"),
                   status=Status(verbosity=-1), runner=Runner(), waits=WaitPolicy(timeout=timeout, interval=0.05),
                   probes=probes)


def test_verify_step_makes_the_model_in_the_cluster_and_gets_a_prediction(
        ml_cluster_env: MlCluster, s3: store.Settings, tmp_path: Path, predictor: Predictor) -> None:
    env = ml_cluster_env
    install_ml(env.kube, s3.credentials)  # the store's Secret holds weed's keys: the cluster's store is weed
    env.controller.hooks.append(kubelet_runs_model_jobs(env, s3, tmp_path))
    seen: list[dict[str, Any]] = []

    def watch_isvc(db: Store) -> None:
        seen.extend(i for i in db.view("serving.kserve.io/v1beta1", "inferenceservices", "default") if i not in seen)

    env.controller.hooks.append(watch_isvc)
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        if name.endswith(".hk.internal"):
            if predictor.proc is None:  # the pod starts once KServe made the InferenceService Ready
                predictor.start()
            return ["127.0.0.1"]
        return []

    class RecordingProbes(HostProbes):
        posted: ClassVar[list[tuple[str, object]]] = []

        def post_json(self, url: str, body: object, *, via: str | None = None) -> Any:
            self.posted.append((url, body))
            return super().post_json(url, body, via=via)

    probes = RecordingProbes(resolve=resolve, http_port=predictor.port, timeout=10)
    step.run(_context(env, tmp_path, probes), [])

    url = urllib.parse.urlsplit(probes.posted[-1][0])
    assert url.path == f"/v1/models/{step.MODEL}:predict" and url.hostname in asked
    assert probes.posted[-1][1] == {"instances": [[6.8, 2.8, 4.8, 1.4]]}
    manifest = models.verify(s3, step.MODEL)
    isvc = next(i for i in seen if i["metadata"]["name"] == step.MODEL)
    assert isvc["metadata"]["annotations"][serve.DIGEST_ANNOTATION] == manifest.digest  # from the termination log
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/{step.MODEL}/"
    jobs = env.server.list("batch/v1", "jobs", store.NAMESPACE)
    assert [j["metadata"]["name"][:len(step.JOB_PREFIX)] for j in jobs] == [step.JOB_PREFIX]
    # the check's InferenceService is removed afterwards; the model stays in the store
    assert env.server.get("serving.kserve.io/v1beta1", "inferenceservices", step.MODEL, "default") is None


def test_host_without_split_dns_predicts_through_the_ingress_address(
        ml_cluster_env: MlCluster, s3: store.Settings, tmp_path: Path, predictor: Predictor) -> None:
    """A plain resolv.conf host cannot resolve the zone: the POST goes to Kourier's address with the Host header."""
    env = ml_cluster_env
    install_ml(env.kube, s3.credentials)
    env.controller.hooks.append(kubelet_runs_model_jobs(env, s3, tmp_path))
    for obj in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kourier-system"}},):
        env.server.put_object("v1", "namespaces", obj)
    env.server.put_object("v1", "services", {  # the node's address, as enable sets it (loopback stands in)
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kourier", "namespace": "kourier-system"},
        "spec": {"externalIPs": ["127.0.0.1"], "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}})
    (tmp_path / "host" / "etc").mkdir(parents=True)
    (tmp_path / "host" / "etc" / "resolv.conf").write_text("nameserver 192.168.1.1\n")
    vias: list[str | None] = []

    def resolve(name: str) -> list[str]:
        if name.endswith(".hk.internal") and predictor.proc is None:
            predictor.start()
        return []  # what getaddrinfo gives for the zone on such a host

    class ViaProbes(HostProbes):
        def post_json(self, url: str, body: object, *, via: str | None = None) -> Any:
            vias.append(via)
            return super().post_json(url, body, via=via)

    step.run(_context(env, tmp_path, ViaProbes(resolve=resolve, http_port=predictor.port, timeout=10)), [])
    assert vias and set(vias) == {"127.0.0.1"}


def test_verify_step_fails_clearly_when_the_job_fails(ml_cluster_env: MlCluster, tmp_path: Path,
                                                      s3: store.Settings) -> None:
    env = ml_cluster_env
    install_ml(env.kube, store.Credentials.generate())  # keys weed does not know: the upload is refused
    env.controller.hooks.append(kubelet_runs_model_jobs(env, s3, tmp_path))
    with pytest.raises(PermanentError) as err:
        step.run(_context(env, tmp_path, HostProbes(resolve=lambda _: [])), [])
    assert "making the check model in the cluster failed" in err.value.brief
    assert "logs job/hk-verify-model-" in (err.value.resolution or "")
    assert env.server.get("serving.kserve.io/v1beta1", "inferenceservices", step.MODEL, "default") is None


def test_verify_step_needs_the_sklearn_runtime(ml_cluster_env: MlCluster, tmp_path: Path) -> None:
    env = ml_cluster_env
    install_ml(env.kube, store.Credentials.generate())
    env.kube.delete(ObjectRef("serving.kserve.io/v1alpha1", "ClusterServingRuntime", None, step.SKLEARN_RUNTIME))
    with pytest.raises(ConfigError, match="kserve-sklearnserver is missing"):
        step.run(_context(env, tmp_path, HostProbes(resolve=lambda _: [])), [])
