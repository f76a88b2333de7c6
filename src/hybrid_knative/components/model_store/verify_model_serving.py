"""End-to-end check of `--with ml`: a tiny scikit-learn model is made INSIDE the cluster and put in the
store, served by KServe, and must answer a real prediction through its URL from this host; then the
check's InferenceService is removed (the model stays in the store as `hk-verify`).

The model is made by a Job running KServe's sklearn runtime image (the image the cluster's
``kserve-sklearnserver`` runtime names), so the pickle comes from the same scikit-learn version that
loads it, and this host needs neither scikit-learn nor boto3: the Job uploads with the store's keys from
its Secret (ml/tiny_model_job.py is the Job's program). The step ends only when
``POST <url>/v1/models/hk-verify:predict`` answers ``{"predictions": [1]}`` from this host.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

from hybrid_knative.dns import hostdns, ingress
from hybrid_knative.errors import ConfigError, DeadlineExceeded, PermanentError, TemporaryError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import job_complete
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.kube.wait import retry, wait_all
from hybrid_knative.ml import cluster, kserve, models, runtimes, serve, store, tiny_model_job
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change, as_yaml

NAME = "verify_model_serving"
TITLE = "Prove a tiny model is served and answers a prediction from this host"
MODEL = "hk-verify"
COMPONENT = "model-store"
JOB_PREFIX = "hk-verify-model"
SKLEARN_RUNTIME = runtimes.runtime("sklearn").cluster_runtime
# the request the check sends and the answer the tiny tree must give (a point it was trained on: class 1)
PREDICT_REQUEST: dict[str, Any] = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
EXPECTED_PREDICTIONS = [1]
JOB_SCRIPT = Path(tiny_model_job.__file__)  # the Job's `python -c` program


def render(rc: RenderContext) -> list[Manifest]:
    return []


def predict_url(url: str) -> str:
    return f"{url.rstrip('/')}/v1/models/{MODEL}:predict"


def sklearn_image(kube: KubeApi) -> str:
    """The image the cluster's sklearn runtime runs (what will load the pickle)."""
    cluster.register_kinds(kube)
    rt = kube.get(ObjectRef("serving.kserve.io/v1alpha1", "ClusterServingRuntime", None, SKLEARN_RUNTIME))
    containers = ((rt or {}).get("spec") or {}).get("containers") or []
    image = containers[0].get("image") if containers else None
    if not image:
        raise ConfigError(f"ClusterServingRuntime {SKLEARN_RUNTIME} is missing (or names no image)",
                          resolution="re-run `hybrid-knative enable --with ml` (the kserve component installs it)")
    return str(image)


def model_job(image: str, *, name: str, deadline: int) -> Manifest:
    """The Job that trains the check model with ``image``'s scikit-learn and uploads it with the store's keys."""
    def key(field: str) -> dict[str, Any]:
        return {"name": field, "valueFrom": {"secretKeyRef": {"name": store.SERVER_SECRET, "key": field}}}

    labels = platform_labels(COMPONENT)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": store.NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": 300,  # the TTL controller removes the Job and its pod
            "template": {
                "metadata": {"labels": {"hybrid-knative.dev/component": COMPONENT}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "make-model",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", JOB_SCRIPT.read_text(encoding="utf-8")],
                        "env": [
                            {"name": "S3_ENDPOINT_URL", "value": f"http://{store.cluster_endpoint()}"},
                            {"name": "AWS_DEFAULT_REGION", "value": store.REGION},
                            {"name": "HK_BUCKET", "value": store.BUCKET},
                            {"name": "HK_MODEL", "value": MODEL},
                            {"name": "HOME", "value": "/tmp"},  # noqa: S108 - inside the container (emptyDir)
                            key(store.ACCESS_KEY_FIELD),
                            key(store.SECRET_KEY_FIELD),
                        ],
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def job_name(salt: str) -> str:
    return f"{JOB_PREFIX}-{hashlib.sha256(salt.encode()).hexdigest()[:6]}"


def job_summary(kube: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    """What the Job's program wrote to its termination log (digest, scikit-learn version); {} if unreadable."""
    for pod in kube.list("v1", "Pod", namespace=namespace, labels={"job-name": name}):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if not message:
                continue
            try:
                found = json.loads(message)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return {}


def check_answer(status: int, body: str) -> None:
    """A wrong prediction is a permanent failure; a non-200 answer (routes settling) is worth retrying."""
    if status != 200:
        raise TemporaryError(f"the check model's predict URL answered HTTP {status}")
    try:
        predictions = json.loads(body).get("predictions")
    except (ValueError, AttributeError):
        predictions = None
    if predictions != EXPECTED_PREDICTIONS:
        raise PermanentError(f"the check model answered {body[:200]!r}, expected predictions "
                             f"{EXPECTED_PREDICTIONS} for {PREDICT_REQUEST['instances']}",
                             resolution=f"look at the predictor's logs: `kubectl -n default logs "
                             f"-l serving.kserve.io/inferenceservice={MODEL} -c kserve-container`")


def make_model(ctx: Context) -> str | None:
    """Run the Job; the model's digest (from its termination log) or None."""
    stamp = datetime.datetime.now(tz=datetime.timezone.utc).isoformat()
    job = model_job(sklearn_image(ctx.kube), name=job_name(stamp), deadline=max(60, int(ctx.waits.timeout)))
    ref = ref_of(job)
    retry(lambda: ctx.kube.apply(job), policy=ctx.waits, what=f"create {ref}", stats=ctx.stats)
    resolution = (f"see `microk8s kubectl -n {ref.namespace} logs job/{ref.name}` (and that the model store "
                  f"runs: `hybrid-knative status`)")
    wait_all({f"make the check model (Job {ref.name})": job_complete(
        ctx.kube, ref.namespace or "", ref.name, what="making the check model in the cluster", resolution=resolution)},
        policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note, resolution=resolution)
    summary = job_summary(ctx.kube, ref.namespace or "", ref.name)
    if summary.get("sklearn"):
        ctx.status.detail(f"check model made with scikit-learn {summary['sklearn']} ({summary.get('bytes')} bytes)")
    digest = summary.get("digest")
    return str(digest) if isinstance(digest, str) and len(digest) == 64 else None


def ingress_fallback(ctx: Context) -> str | None:
    """The ingress address to send the prediction through when this host's resolver cannot be pointed at the
    zone (local domain, hostdns mode ``manual``) — as the smoke check does; None to go by name."""
    if ctx.config.domain_mode != "local" or hostdns.detect(ctx.config.host_root).mode != "manual":
        return None
    return ingress.current(ctx.kube)


def run(ctx: Context, objs: list[Manifest]) -> None:
    # the keys stay in the cluster: this host never talks to the store (the Job does)
    settings = cluster.store_settings(ctx.kube, endpoint=store.cluster_endpoint())
    digest = make_model(ctx)
    req = serve.ServeRequest(name=MODEL, namespace="default", runtime=runtimes.runtime("sklearn"),
                             storage_uri=models.storage_uri(settings, MODEL), digest=digest)
    isvc = cluster.apply_serving(ctx.kube, req, settings, labels=platform_labels(COMPONENT))
    url = predict_url(cluster.wait_url(ctx.kube, isvc, ctx.waits, on_progress=ctx.status.note))
    via = ingress_fallback(ctx)
    if via:
        ctx.status.detail(f"this host cannot resolve the zone: POST {url} through the ingress address {via}")

    def answers() -> None:
        answer = ctx.probes.post_json(url, PREDICT_REQUEST, via=via)
        check_answer(answer.status, answer.body)

    try:
        retry(answers, policy=ctx.waits, what=f"POST {url} from this host", stats=ctx.stats)
    except DeadlineExceeded as exc:
        raise PermanentError(f"the check model does not answer from this host: {url}", details=exc.details,
                             resolution="run `hybrid-knative doctor` (it checks the host's DNS and the ingress)"
                             ) from None
    ctx.status.info(f"model serving works: {url} answered {EXPECTED_PREDICTIONS}")
    ctx.kube.delete(ref_of(isvc))


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The Job that makes the check model (created at verify time) and the prediction asked from this host."""
    image = next((c["image"] for rt in kserve.render_runtimes(rc.store, {})
                  if rt["metadata"]["name"] == SKLEARN_RUNTIME for c in rt["spec"]["containers"]), "<sklearn image>")
    job = model_job(str(image), name=job_name("plan"), deadline=max(60, int(rc.config.wait_timeout)))
    return [Change("object", f"{ref_of(job)} (name varies per run; removed by the TTL controller)", as_yaml(job),
                   "create" if kube is not None else ""),
            Change("command", f"POST the check model's predict URL from this host ({MODEL})",
                   f"POST <url>/v1/models/{MODEL}:predict {json.dumps(PREDICT_REQUEST)} "
                   f"(expects {{\"predictions\": {EXPECTED_PREDICTIONS}}})", "run")]
