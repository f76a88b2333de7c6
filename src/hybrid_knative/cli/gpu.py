"""`hybrid-knative gpu status|example`: what each node's GPUs can do, and a PyTorch-on-ROCm workload."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from hybrid_knative import addon
from hybrid_knative.cli.common import build_config, cluster_options, handle_errors, verbosity_options
from hybrid_knative.components.gpu_amd import rocm as gpu_install
from hybrid_knative.errors import HybridError
from hybrid_knative.system import gpu as gpu_probe

STATE_TEXT = {
    "amd": "AMD GPU ready for ROCm",
    "amd-no-driver": "AMD GPU present, amdgpu driver not loaded",
    "nvidia": "NVIDIA GPU with driver",
    "nvidia-no-driver": "NVIDIA GPU present, driver not loaded",
    "none": "no GPU",
    "unknown": "GPU state unknown",
}


@click.group("gpu")
def group() -> None:
    """GPUs: per-node status, and a PyTorch-on-ROCm example workload."""


def node_rows(nodes: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(node, state, gfx target, allocatable, what is missing) per Node, from our labels and its status."""
    rows = []
    for node in nodes:
        meta = node.get("metadata") or {}
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        alloc = (node.get("status") or {}).get("allocatable") or {}
        state = labels.get("hybrid-knative.io/gpu", "not probed")
        amd, nvidia = str(alloc.get("amd.com/gpu", "0")), str(alloc.get("nvidia.com/gpu", "0"))
        allocatable = f"amd.com/gpu={amd}" if state.startswith("amd") else (
            f"nvidia.com/gpu={nvidia}" if state.startswith("nvidia") else "-")
        if state == "amd" and amd in ("0", ""):
            missing = "the ROCm device plugin is not serving this node (enable with --gpu amd, or restart its pod)"
        elif state == "nvidia" and nvidia in ("0", ""):
            missing = "the nvidia addon is not serving this node (`sudo microk8s enable nvidia`)"
        elif state in STATE_TEXT and state not in ("amd", "nvidia", "none"):
            missing = notes.get("hybrid-knative.io/gpu-reason") or STATE_TEXT[state]
        elif state == "not probed":
            missing = "not probed: enable runs the probe on its own node; edge nodes report through `join`"
        else:
            missing = "-"
        rows.append((str(meta.get("name", "?")), state, labels.get(gpu_install.GFX_LABEL, "-"), allocatable, missing))
    return rows


@group.command()
@cluster_options
@click.option("--host-root", type=click.Path(path_type=Path, file_okay=False), default=Path("/"), hidden=True)
@verbosity_options
@handle_errors
def status(verbose: int, quiet: bool, host_root: Path, **cluster: Any) -> None:
    """This host's GPUs (driver state, gfx target, VRAM) and every node's GPU state in the cluster."""
    report = gpu_probe.detect(host_root)
    click.echo(f"this host: {STATE_TEXT.get(report.state, report.state)} — {report.reason}")
    for dev in report.devices:
        vram = f"{dev.vram_bytes / 2**30:.0f} GiB" if dev.vram_bytes else "-"
        click.echo(f"  {dev.pci_address}  {dev.vendor}  {dev.device_id}  driver={dev.driver or 'none'}  "
                   f"gfx={dev.gfx_target or '-'}  vram={vram}")
    if report.render_gid is not None:
        click.echo(f"  render group id: {report.render_gid}")
    try:
        config = build_config(host_root=host_root, **cluster)
        nodes = addon.connect(config).list("v1", "Node")
    except HybridError as exc:
        click.echo(f"cluster: not reachable ({exc.brief})", err=True)
        sys.exit(1)
    rows = node_rows(nodes)
    header = ("NODE", "GPU", "GFX", "ALLOCATABLE", "MISSING")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        click.echo("  ".join(col.ljust(widths[i]) for i, col in enumerate(row[:4])) + "  " + row[4])


@group.command()
@click.option("--kind", type=click.Choice(["ksvc", "pod"]), default="ksvc", show_default=True,
              help="A Knative Service answering HTTP with the GPU's name, or a one-shot Pod.")
@click.option("--name", default="pytorch-rocm", show_default=True)
@click.option("--namespace", default="default", show_default=True)
@click.option("--gpus", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--image", default=gpu_install.PYTORCH_IMAGE, show_default=True, help="Pinned rocm/pytorch image.")
@click.option("--render-gid", type=click.IntRange(0, 2**31 - 1),
              help="The host's render group id (default: probed on this host).")
@click.option("--hsa-override-gfx-version", help="For consumer GPUs ROCm does not list, e.g. 10.3.0 or 11.0.0.")
@click.option("--host-root", type=click.Path(path_type=Path, file_okay=False), default=Path("/"), hidden=True)
@handle_errors
def example(kind: str, name: str, namespace: str, gpus: int, image: str, render_gid: int | None,
            hsa_override_gfx_version: str | None, host_root: Path) -> None:
    """Print a PyTorch-on-ROCm workload with the pod settings ROCm needs (apply it with kubectl)."""
    if render_gid is None:
        render_gid = gpu_probe.detect(host_root).render_gid
    objs = gpu_install.render_pytorch(kind=kind, name=name, namespace=namespace, gpus=gpus,  # type: ignore[arg-type]
                                      image=image, render_gid=render_gid,
                                      hsa_override_gfx_version=hsa_override_gfx_version)
    click.echo(yaml.safe_dump_all(objs, sort_keys=False), nl=False)
