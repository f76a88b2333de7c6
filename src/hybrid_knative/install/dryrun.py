"""The dry run: `hybrid-knative plan --output DIR` renders every step and writes what it would do."""

from __future__ import annotations

from pathlib import Path

from hybrid_knative.catalog import Release
from hybrid_knative.components.gpu_amd import rocm as gpu
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.plan import RenderedStep, plan, render_plan
from hybrid_knative.install.preflight import host_facts, render_context
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ref_of
from hybrid_knative.manifests import dump_all
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.platform.preview import live_get, object_change
from hybrid_knative.progress import Status

PLAN_MARKER = ".hybrid-knative-plan"


def render(config: Config, version: KubeVersion, status: Status,
           host: HostFacts | None = None) -> tuple[Release, list[RenderedStep]]:
    rc = render_context(config, version, status, host)
    return rc.release, render_plan(plan(config, rc.host), rc)


def write_plan(config: Config, version: KubeVersion, output: Path, status: Status, *,
               kube: KubeApi | None = None) -> tuple[Release, list[RenderedStep], list[Path]]:
    """The dry run: render every step and write, per step, every object it applies and every other change
    (patches to objects we do not own, host files with their content, commands); plan.txt lists them all.
    With ``kube`` each item is compared with the live cluster (create / update / unchanged) — GETs only."""
    rc = render_context(config, version, status, host_facts(config, None, status))
    release, rendered = rc.release, render_plan(plan(config, rc.host), rc)
    if output.exists() and any(output.iterdir()) and not (output / PLAN_MARKER).exists():
        raise ConfigError(f"{output} is not empty and was not written by `hybrid-knative plan`",
                          resolution="choose a new or empty folder for --output")
    output.mkdir(parents=True, exist_ok=True)
    for old in [*output.glob("[0-9][0-9]-*.yaml"), *output.glob("[0-9][0-9]-*.changes.txt")]:
        old.unlink()
    (output / PLAN_MARKER).write_text(f"knative {release.line} for Kubernetes {version.minor_version}\n")
    if kube is not None:
        for r in rendered:  # CRD kinds must be known to GET their objects (a read, nothing is registered live)
            kube.register_crds(o for o in r.objects if o["kind"] == "CustomResourceDefinition")
    written = []
    summary = [f"Plan for Knative {release.line} on Kubernetes {version.minor_version}"
               + (f", compared with {kube.server}" if kube is not None else " (no cluster: not compared)")]
    for index, r in enumerate(rendered, start=1):
        path = output / f"{index:02d}-{r.step.name}.yaml"
        header = f"# step {index}: {r.step.title} ({r.step.name}, component {r.step.component})\n"
        if not r.step.applies:
            header += "# merge patches onto objects this step does not own\n"
        items = [object_change(o, live_get(kube, ref_of(o)), compared=kube is not None,
                               what="object" if r.step.applies else "patch") for o in r.objects]
        extra = r.step.preview(rc, kube) if r.step.preview is not None else []
        if not r.objects:
            header += f"# (no objects; {len(extra)} other changes in {path.stem}.changes.txt)\n" if extra else \
                "# (no objects and no other changes)\n"
        docs = [f"# [{c.action or 'apply'}] {c.target}\n" + c.content  # the YAML object_change wrote once
                for c in items]
        path.write_text(header + "---\n".join(docs), encoding="utf-8")
        written.append(path)
        summary.append(f"{index:>2}. {r.step.name} ({r.step.component}): {r.step.title}")
        summary.extend(f"      [{c.action or '?'}] {c.what} {c.target}" for c in [*items, *extra])
        if extra:
            changes = output / f"{index:02d}-{r.step.name}.changes.txt"
            changes.write_text("\n".join(c.render() for c in extra), encoding="utf-8")
    (output / "plan.txt").write_text("\n".join(summary) + "\n", encoding="utf-8")
    written.extend(_write_examples(rendered, output))
    return release, rendered, written


def _write_examples(rendered: list[RenderedStep], output: Path) -> list[Path]:
    """Example workloads for what this plan installs (today: PyTorch on ROCm when AMD GPUs are set up)."""
    examples = output / "examples"
    for old in examples.glob("*.yaml"):
        old.unlink()
    labels = next((r.objects[0]["metadata"] for r in rendered if r.step.name == "label_gpu_nodes"), None)
    if labels is None:
        return []
    gid = (labels.get("annotations") or {}).get(gpu.RENDER_GID_ANNOTATION)
    examples.mkdir(exist_ok=True)
    paths = []
    for kind in ("ksvc", "pod"):
        objs = gpu.render_pytorch(kind=kind, render_gid=int(gid) if gid else None)
        path = examples / f"pytorch-rocm-{kind}.yaml"
        path.write_text("# PyTorch on ROCm: one AMD GPU, memory-backed /dev/shm, seccomp Unconfined, render group\n"
                        + dump_all(objs), encoding="utf-8")
        paths.append(path)
    return paths
