"""Label this node with what the GPU probe found (amd.com/gpu.present, gfx target, render group id).

The device plugin's DaemonSets select exactly the nodes labelled here. The labels are not ours to
delete with the Node: the previous values are recorded, and disable puts them back.
"""

from __future__ import annotations

from hybrid_knative.components.gpu_amd import rocm as gpu
from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest, ref_of
from hybrid_knative.kube.wait import retry
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.record import NodeLabels, Undo

NAME = "label_gpu_nodes"
TITLE = "Label this node with its GPU facts"
UNDO_KEY = "node-labels gpu"


def render(rc: RenderContext) -> list[Manifest]:
    labels, annotations = gpu.node_labels(rc.host.gpu)
    meta: dict[str, object] = {"name": rc.host.node_name or "this-node", "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return [{"apiVersion": "v1", "kind": "Node", "metadata": meta}]


def run(ctx: Context, objs: list[Manifest]) -> None:
    for obj in objs:
        ref = ref_of(obj)
        live = ctx.kube.get(ref)
        if live is None:
            raise PermanentError(f"{ref} not found", resolution="check `microk8s kubectl get nodes`; "
                                 "the node name must match this host's")
        meta = live.get("metadata") or {}
        want = {"labels": obj["metadata"].get("labels") or {}, "annotations": obj["metadata"].get("annotations") or {}}
        have = {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}
        if all(have[part].get(k) == v for part in want for k, v in want[part].items()):
            ctx.status.detail(f"unchanged {ref}")
            continue
        ctx.record.put_undo(Undo(f"{UNDO_KEY} {ref.name}", NodeLabels(
            node=ref.name, labels={k: have["labels"].get(k) for k in want["labels"]},
            annotations={k: have["annotations"].get(k) for k in want["annotations"]}),
            step=NAME, component=ctx.component))
        patch = {"metadata": {part: values for part, values in want.items() if values}}
        retry(lambda ref=ref, patch=patch: ctx.kube.merge_patch(ref, patch),  # type: ignore[misc]
              policy=ctx.waits, what=f"label {ref}", stats=ctx.stats)
        ctx.status.detail(f"labelled {ref}: {', '.join(want['labels'])}")
