"""The dry run: `hybrid-knative plan --output DIR` renders every step and writes what it would do."""

from __future__ import annotations

from pathlib import Path

import yaml

from hybrid_knative.catalog import Release
from hybrid_knative.components.gpu_amd import rocm as gpu
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.plan import RenderedStep, plan, render_plan
from hybrid_knative.install.preflight import host_facts, render_context
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.progress import Status

PLAN_MARKER = ".hybrid-knative-plan"


def render(config: Config, version: KubeVersion, status: Status,
           host: HostFacts | None = None) -> tuple[Release, list[RenderedStep]]:
    rc = render_context(config, version, status, host)
    return rc.release, render_plan(plan(config, rc.host), rc)


def write_plan(config: Config, version: KubeVersion, output: Path,
               status: Status) -> tuple[Release, list[RenderedStep], list[Path]]:
    """The dry run: render every step and write its objects to ``output``; touches no cluster."""
    release, rendered = render(config, version, status, host_facts(config, None, status))
    if output.exists() and any(output.iterdir()) and not (output / PLAN_MARKER).exists():
        raise ConfigError(f"{output} is not empty and was not written by `hybrid-knative plan`",
                          resolution="choose a new or empty folder for --output")
    output.mkdir(parents=True, exist_ok=True)
    for old in output.glob("[0-9][0-9]-*.yaml"):
        old.unlink()
    (output / PLAN_MARKER).write_text(f"knative {release.line} for Kubernetes {version.minor_version}\n")
    written = []
    for index, r in enumerate(rendered, start=1):
        path = output / f"{index:02d}-{r.step.name}.yaml"
        header = f"# step {index}: {r.step.title} ({r.step.name})\n"
        if not r.step.applies:
            header += "# merge patches onto objects applied by earlier steps\n"
        if not r.objects:
            header += "# (no objects: this step acts outside the cluster)\n"
        path.write_text(header + yaml.safe_dump_all(r.objects, sort_keys=False), encoding="utf-8")
        written.append(path)
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
                        + yaml.safe_dump_all(objs, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths
