"""KServe's controller (cut from the pinned install script) with our webhook certificate and caBundle.

`plan` shows the objects with the Secrets' data and the caBundles left out (they are made at enable
time from what the cluster holds: a certificate is kept until it is due, see ml/pki.py). The
controller only watches Knative Services if their CRD existed when it started: when that CRD is newer
than the controller's pods, the Deployment is restarted (kserve#1447).
"""

from __future__ import annotations

import datetime

from hybrid_knative.kube.objects import Manifest, ObjectRef
from hybrid_knative.ml import cluster, kserve, pki, store
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.waits import wait_deployments, wait_webhook_endpoints

NAME = "install_kserve"
TITLE = "Install KServe's controller (own webhook certificate, no cert-manager)"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _objects(rc: RenderContext, webhook: pki.WebhookPki) -> list[Manifest]:
    return kserve.render_controller(rc.store, platform_labels("kserve"), webhook, domain=rc.config.domain,
                                    store_endpoint=store.cluster_endpoint())


def render(rc: RenderContext) -> list[Manifest]:
    return pki.redacted(_objects(rc, pki.PLACEHOLDER))


def run(ctx: Context, objs: list[Manifest]) -> None:
    webhook, reasons = pki.ensure(pki.KSERVE, cluster.current_pki(ctx.kube, pki.KSERVE))
    if reasons:
        ctx.status.detail(f"webhook certificate: {'; '.join(reasons)}")
    live = _objects(ctx.render, webhook)
    apply_objects(ctx, NAME, live)
    restart_if_knative_is_newer(ctx)
    wait_deployments(ctx, live, resolution="see `microk8s kubectl -n kserve get pods` and the manager's logs")
    wait_webhook_endpoints(ctx, kserve.NAMESPACE, pki.KSERVE.service,
                           resolution="the controller serves its webhooks on :9443; see its logs")


def _time(value: object) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def restart_if_knative_is_newer(ctx: Context) -> bool:
    crd = ctx.kube.get(ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                                 "services.serving.knative.dev"))
    ref = ObjectRef("apps/v1", "Deployment", kserve.NAMESPACE, kserve.CONTROLLER)
    deploy = ctx.kube.get(ref)
    if crd is None or deploy is None:
        return False
    crd_time = _time(crd["metadata"].get("creationTimestamp"))
    annotations = ((deploy["spec"].get("template") or {}).get("metadata") or {}).get("annotations") or {}
    started = _time(annotations.get(RESTARTED_AT) or deploy["metadata"].get("creationTimestamp"))
    if crd_time is None or started is None or crd_time <= started:
        return False
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ctx.kube.merge_patch(ref, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}})
    ctx.status.info("KServe restarted: Knative's CRDs appeared after its controller started")
    return True
