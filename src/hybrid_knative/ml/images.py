"""Images `--with ml` needs in an air-gap bundle (beyond what the rendered objects show)."""

from __future__ import annotations

import json

from hybrid_knative.ml import kserve, pki, store, training
from hybrid_knative.ml.runtimes import PYTORCH_ROCM_IMAGE, VLLM_ROCM_IMAGE
from hybrid_knative.upstream import UpstreamStore

ROCM_IMAGES = (VLLM_ROCM_IMAGE, PYTORCH_ROCM_IMAGE)  # amd64 only, 10–20 GB each: never by default


def ml_images(up: UpstreamStore) -> list[str]:
    """Controller, storage initializer, the CPU runtimes, the model store and the Training Operator."""
    controller = kserve.render_controller(up, {}, pki.PLACEHOLDER)
    found = set(kserve.controller_images(controller))
    for rt in kserve.render_runtimes(up, {}):
        found.update(c["image"] for c in rt["spec"]["containers"])
    found.add(store.IMAGE)
    found.update(training.operator_images(up))
    for obj in controller:
        if obj.get("kind") == "ConfigMap" and obj["metadata"]["name"] == kserve.CONFIG_MAP:
            agent = json.loads(obj["data"].get("agent") or "{}").get("image")
            if agent:
                found.add(str(agent))
    return sorted(found)
