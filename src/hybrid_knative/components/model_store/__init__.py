"""The in-cluster model store (SeaweedFS S3) for `--with ml`, the gridfs:// backend with `--with ml-gridfs`,
and the end-to-end check that a tiny model is pushed, served and answers. See docs/ml.md."""

from __future__ import annotations

from collections.abc import Sequence

from hybrid_knative.components.model_store import install_gridfs_storage, install_model_store, verify_model_serving
from hybrid_knative.config import Config
from hybrid_knative.platform.component import Component, NamespaceCheck, Step
from hybrid_knative.platform.context import HostFacts


def enabled(config: Config, host: HostFacts) -> bool:
    return config.has("ml")


def steps(config: Config, host: HostFacts) -> Sequence[Step]:
    chosen = [Step.of(install_model_store)]
    if config.has("ml-gridfs"):
        chosen.append(Step.of(install_gridfs_storage))
    if config.verify:
        chosen.append(Step.of(verify_model_serving, applies=False))
    return chosen


COMPONENT = Component(
    name="model-store",
    title="Model store (SeaweedFS S3)",
    steps=steps,
    enabled=enabled,
    after=("kserve",),
    namespaces=(NamespaceCheck("hk-model-store", "model store", required=False),),
)
