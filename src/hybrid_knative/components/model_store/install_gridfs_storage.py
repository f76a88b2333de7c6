"""The ClusterStorageContainer that lets KServe load gridfs:// models (opt-in: `--with ml-gridfs`).

Its image is built and pushed by `hybrid-knative model gridfs-image` (buildah; it needs a base image and
pymongo's wheels, which an air-gapped `enable` cannot assume), which pins it BY DIGEST in the live object;
a re-run of enable keeps that pinned image instead of going back to the rendered tag."""

from __future__ import annotations

from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ml import cluster, gridfs, initializer_image
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext

NAME = "install_gridfs_storage"
TITLE = "Accept gridfs:// model URIs (MongoDB GridFS backend)"


def render(rc: RenderContext) -> list[Manifest]:
    return [gridfs.storage_container(labels=platform_labels("model-store"))]


def run(ctx: Context, objs: list[Manifest]) -> None:
    live = cluster.gridfs_storage_container(ctx.kube)
    image = str((((live or {}).get("spec") or {}).get("container") or {}).get("image") or "")
    if initializer_image.is_pinned(image):
        objs = [gridfs.storage_container(image=image, labels=platform_labels("model-store"))]
    else:
        ctx.status.warn("the gridfs:// initializer image is not built yet: run `hybrid-knative model gridfs-image` "
                        "(builds it with buildah, pushes it to the cluster registry, pins it by digest)")
    apply_objects(ctx, NAME, objs)
