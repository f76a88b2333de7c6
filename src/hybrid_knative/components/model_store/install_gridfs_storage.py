"""The ClusterStorageContainer that lets KServe load gridfs:// models (opt-in: `--with ml-gridfs`)."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import gridfs
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext

NAME = "install_gridfs_storage"
TITLE = "Accept gridfs:// model URIs (MongoDB GridFS backend)"


def render(rc: RenderContext) -> list[Manifest]:
    return [gridfs.storage_container(labels=platform_labels("model-store"))]


def run(ctx: Context, objs: list[Manifest]) -> None:
    ctx.kube.register_kind("serving.kserve.io/v1alpha1", "ClusterStorageContainer", "clusterstoragecontainers",
                           namespaced=False)
    apply_objects(ctx, NAME, objs)
