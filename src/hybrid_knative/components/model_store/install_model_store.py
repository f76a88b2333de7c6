"""SeaweedFS with its S3 gateway: a PVC, a Deployment, a Service; credentials generated once, kept on re-runs."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest, ObjectRef
from hybrid_knative.ml import pki, store
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.waits import wait_deployments

NAME = "install_model_store"
TITLE = "Install the model store (SeaweedFS S3)"
_PLAN_CREDENTIALS = store.Credentials(access_key="<generated at enable>", secret_key="<generated at enable>")  # noqa: S106


def render(rc: RenderContext) -> list[Manifest]:
    return pki.redacted(store.render(_PLAN_CREDENTIALS, platform_labels(store.COMPONENT)))


def run(ctx: Context, objs: list[Manifest]) -> None:
    existing = ctx.kube.get(ObjectRef("v1", "Secret", store.NAMESPACE, store.SERVER_SECRET))
    credentials = store.Credentials.from_secret_data((existing or {}).get("data")) or store.Credentials.generate()
    live = store.render(credentials, platform_labels(store.COMPONENT))
    apply_objects(ctx, NAME, live)
    wait_deployments(ctx, live, resolution="see `microk8s kubectl -n hk-model-store get pods,pvc` (a PVC needs "
                     "a storage class: `microk8s enable hostpath-storage`)")
