"""`hybrid-knative model push|serve|list`, `train example`, `certs rotate|status` (Kubeflow-lite)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from hybrid_knative import addon
from hybrid_knative.cli.common import build_config, cluster_options, handle_errors, make_status, verbosity_options
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.ml import cluster, models, pki, runtimes, serve, store, training

RUNTIME_HELP = "; ".join(f"{r.name}: {r.description}" for r in runtimes.RUNTIMES.values())


def _connect(cluster_opts: dict[str, Any]) -> tuple[KubeApi, float, float]:
    config = build_config(**cluster_opts)
    return addon.connect(config), config.wait_timeout, config.poll_interval


def store_option(fn: Any) -> Any:
    return click.option("--store-endpoint", metavar="HOST:PORT",
                        help="The model store's S3 endpoint. Default: the cluster's store Service (reachable "
                        "from a MicroK8s node).")(fn)


@click.group("model")
def model() -> None:
    """Models: push a folder into the cluster's model store (sha256 manifest), serve it, list what is there."""


@model.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", required=True, help="Model name (lowercase, digits, '-'): also the InferenceService's name.")
@store_option
@cluster_options
@verbosity_options
@handle_errors
def push(directory: Path, name: str, store_endpoint: str | None, verbose: int, quiet: bool, **opts: Any) -> None:
    """Upload DIRECTORY as model NAME, with a sha256 manifest written last."""
    models.check_name(name)
    status = make_status(verbose, quiet)
    kube, _, _ = _connect(opts)
    settings = cluster.store_settings(kube, endpoint=store_endpoint)
    with status.step(f"Push {directory} as {name}"):
        manifest = models.push(settings, directory, name, progress=status.note)
    click.echo(f"{name}: {len(manifest.files)} files, {manifest.size} bytes, sha256 {manifest.digest}")
    click.echo(f"storage URI: {models.storage_uri(settings, name)}")


@model.command("list")
@store_option
@cluster_options
@verbosity_options
@handle_errors
def list_(store_endpoint: str | None, verbose: int, quiet: bool, **opts: Any) -> None:
    """Models in the store (complete pushes only)."""
    kube, _, _ = _connect(opts)
    found = models.list_models(cluster.store_settings(kube, endpoint=store_endpoint))
    if not found:
        click.echo("no models yet: `hybrid-knative model push DIR --name NAME`")
        return
    width = max(4, *(len(m.name) for m in found))
    click.echo(f"{'NAME'.ljust(width)}  FILES  {'BYTES':>12}  CREATED               SHA256")
    for m in found:
        click.echo(f"{m.name.ljust(width)}  {m.files:>5}  {m.size:>12}  {m.created:<20}  {m.digest[:16]}…")


@model.command("serve")
@click.argument("name")
@click.option("--runtime", "runtime_name", required=True, help=f"Serving runtime. {RUNTIME_HELP}.")
@click.option("--uri", help="Serve this URI (s3://, pvc://, oci://, gridfs://) instead of the pushed model NAME.")
@click.option("--namespace", default="default", show_default=True)
@click.option("--gpu", "gpus", type=click.IntRange(0, 16), default=0, help="AMD GPUs (ROCm runtimes; default 1).")
@click.option("--knative", "knative_for_gpu", is_flag=True,
              help="GPU runtimes: Knative mode instead of Standard + Recreate (single-GPU rollouts then hang).")
@click.option("--min-replicas", type=click.IntRange(0, 100), help="0 scales to zero when idle (CPU default).")
@click.option("--verify", "verify", type=click.Choice(["full", "quick", "none"]), default="full", show_default=True,
              help="Check the stored model against its sha256 manifest before serving: full re-hashes every "
              "byte, quick compares sizes and recorded sha256, none skips (only for --uri).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it answers and print its URL.")
@click.option("--dry-run", is_flag=True, help="Print the InferenceService and apply nothing.")
@store_option
@cluster_options
@verbosity_options
@handle_errors
def serve_(name: str, runtime_name: str, uri: str | None, namespace: str, gpus: int, knative_for_gpu: bool,
           min_replicas: int | None, verify: str, wait: bool, dry_run: bool, store_endpoint: str | None,
           verbose: int, quiet: bool, **opts: Any) -> None:
    """Serve model NAME with a runtime; prints its URL once it is Ready."""
    rt = runtimes.runtime(runtime_name)
    models.check_name(name)
    if verify == "none" and uri is None:
        raise ConfigError("--verify none is only for --uri models",
                          resolution="models pushed with `model push` are always checked against their manifest")
    status = make_status(verbose, quiet)
    kube, timeout, interval = _connect(opts)
    gridfs_enabled = kube.get(_csc_ref()) is not None if uri and uri.startswith("gridfs://") else False
    digest = None
    settings = None
    if uri is None or uri.startswith(f"s3://{store.BUCKET}/"):
        settings = cluster.store_settings(kube, endpoint=store_endpoint)
    if uri is None:
        assert settings is not None
        with status.step(f"Verify {name} against its sha256 manifest ({verify})"):
            manifest = models.verify(settings, name, full=verify == "full", progress=status.note)
        digest = manifest.digest
        uri = models.storage_uri(settings, name)
    else:
        serve.check_uri(uri, gridfs_enabled=gridfs_enabled)
    gpu_count = serve.check_gpu(rt, gpus, cluster.gpu_count(kube)) if rt.gpu or gpus else 0
    req = serve.ServeRequest(name=name, namespace=namespace, runtime=rt, storage_uri=uri, gpus=gpu_count,
                             knative_for_gpu=knative_for_gpu, min_replicas=min_replicas,
                             render_gid=cluster.render_gid(kube) if rt.gpu else None, digest=digest)
    if warning := serve.gpu_warning(req):
        status.warn(warning)
    if dry_run:
        click.echo(yaml.safe_dump(serve.render_inference_service(req), sort_keys=False), nl=False)
        return
    with status.step(f"Apply InferenceService {namespace}/{name} ({rt.cluster_runtime})"):
        isvc = cluster.apply_serving(kube, req, settings or store.Settings("", store.Credentials("", "")))
    if not wait:
        click.echo(f"{namespace}/{name} applied; `kubectl -n {namespace} get inferenceservice {name}` shows its URL")
        return
    with status.step(f"Wait for {name} to answer"):
        url = cluster.wait_url(kube, isvc, WaitPolicy(timeout=timeout, interval=interval), on_progress=status.note)
    click.echo(url)
    if rt.protocol == "v1":
        click.echo(f"predict: curl {url}/v1/models/{name}:predict -d '{{\"instances\": [[...]]}}'", err=True)


@model.command("gridfs-image")
@click.option("--registry", default="localhost:32000", show_default=True,
              help="The cluster registry to push to (HOST:PORT; MicroK8s: `microk8s enable registry`).")
@click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="A folder with pymongo's wheels for the image's Python (3.12) and this machine's arch "
              "(offline builds; checked before the build). Default: download them so with pip.")
@click.option("--base-mirror", metavar="HOST:PORT",
              help="Pull the base image (docker.io/library/python:3.12-slim) from this registry mirror (offline).")
@click.option("--no-pin", is_flag=True, help="Only build and push; do not pin the image in the cluster.")
@cluster_options
@verbosity_options
@handle_errors
def gridfs_image(registry: str, wheelhouse: Path | None, base_mirror: str | None, no_pin: bool, verbose: int,
                 quiet: bool, **opts: Any) -> None:
    """Build the gridfs:// storage initializer image (buildah: no Docker daemon), push it to the cluster
    registry and pin it BY DIGEST in ClusterStorageContainer hk-gridfs (`enable --with ml-gridfs` installs it).

    Same sources → same digest: running it again changes nothing."""
    import tempfile

    from hybrid_knative.ml import initializer_image
    from hybrid_knative.system.buildah import Buildah
    from hybrid_knative.system.runner import Runner

    status = make_status(verbose, quiet)
    initializer_image.destination(registry)  # bad input fails before the slow part
    runner = Runner()
    buildah = Buildah.default(runner, mirrors={"docker.io": base_mirror} if base_mirror else None)
    buildah.check_available()
    with tempfile.TemporaryDirectory(prefix="hk-gridfs-image-") as tmp:
        with status.step("Gather the build context (Containerfile, initializer, pymongo wheels)"):
            context = initializer_image.build_context(Path(tmp) / "context", runner, wheelhouse=wheelhouse)
        with status.step(f"Build and push to {registry}"):
            image = initializer_image.build_and_push(buildah, context, registry)
    if not no_pin:
        kube, _, _ = _connect(opts)
        with status.step("Pin it in ClusterStorageContainer hk-gridfs"):
            pinned = cluster.pin_gridfs_image(kube, image)
        if not pinned:
            status.warn("GridFS is not enabled on this cluster: `hybrid-knative enable --with ml --with ml-gridfs`, "
                        "then run this again to pin the image")
    click.echo(image)


def _csc_ref() -> ObjectRef:
    return ObjectRef("serving.kserve.io/v1alpha1", "ClusterStorageContainer", None, serve.GRIDFS_STORAGE_CONTAINER)


@click.group("train")
def train() -> None:
    """Training with the Kubeflow Training Operator (PyTorchJob)."""


@train.command()
@click.option("--rocm/--cpu", default=True, show_default=True,
              help="AMD GPUs through RCCL (PyTorch's nccl backend), or CPUs (gloo).")
@click.option("--name", default="rocm-ddp-check", show_default=True)
@click.option("--namespace", default="default", show_default=True)
@click.option("--workers", type=click.IntRange(0, 64), default=1, show_default=True, help="Workers beside the Master.")
@click.option("--gpus", type=click.IntRange(1, 16), default=1, show_default=True, help="GPUs per pod (--rocm).")
@click.option("--image", help="Training image (default: the pinned rocm/pytorch, or pytorch/pytorch with --cpu).")
@click.option("--render-gid", type=click.IntRange(0, 2**31 - 1),
              help="The GPU nodes' render group id (see `hybrid-knative gpu status`).")
@click.option("--hsa-override-gfx-version", help="For consumer GPUs ROCm does not list, e.g. 11.0.0.")
@handle_errors
def example(rocm: bool, name: str, namespace: str, workers: int, gpus: int, image: str | None,
            render_gid: int | None, hsa_override_gfx_version: str | None) -> None:
    """Print a PyTorchJob that all-reduces across its pods (RCCL settings, /dev/shm, render group, amd.com/gpu)."""
    job = training.pytorchjob_example(name=name, namespace=namespace, rocm=rocm, workers=workers,
                                      gpus_per_pod=gpus, image=image, render_gid=render_gid,
                                      hsa_override_gfx_version=hsa_override_gfx_version)
    click.echo(training.to_yaml(job), nl=False)


@click.group("certs")
def certs() -> None:
    """Webhook certificates of KServe and the Training Operator (made by hybrid-knative, no cert-manager)."""


_COMPONENT_CHOICE = click.Choice(["all", *sorted(pki.TARGETS)])


@certs.command()
@click.option("--component", type=_COMPONENT_CHOICE, default="all", show_default=True)
@click.option("--if-due", is_flag=True, help=f"Only re-issue certificates with less than "
              f"{pki.ROTATE_BEFORE.days} days left (for a timer).")
@cluster_options
@verbosity_options
@handle_errors
def rotate(component: str, if_due: bool, verbose: int, quiet: bool, **opts: Any) -> None:
    """Re-issue the webhook certificates and update every webhook's caBundle (the old CA stays trusted)."""
    kube, _, _ = _connect(opts)
    names = sorted(pki.TARGETS) if component == "all" else [component]
    done = 0
    for name in names:
        target = pki.target(name)
        if component == "all" and kube.get(_namespace_ref(target.namespace)) is None:
            continue
        result = cluster.rotate(kube, target, force=not if_due)
        done += 1
        state = "re-issued" if result.changed else "still good"
        click.echo(f"{name}: {state}, valid until {result.not_after:%Y-%m-%d}"
                   + (f" ({'; '.join(result.reasons)})" if result.changed else ""))
    if not done:
        raise ConfigError("no ML component with a webhook is installed", resolution="enable --with ml first")


@certs.command("status")
@cluster_options
@verbosity_options
@handle_errors
def certs_status(verbose: int, quiet: bool, **opts: Any) -> None:
    """Expiry of each installed webhook certificate. Exit 3 when one is close to expiry."""
    kube, _, _ = _connect(opts)
    reports = cluster.expiry(kube)
    for r in reports:
        click.echo(f"{r.component}: {'ok' if r.ok else 'ATTENTION'} — {r.message}")
    if not reports:
        click.echo("no ML component with a webhook is installed")
    sys.exit(0 if all(r.ok for r in reports) else 3)


def _namespace_ref(name: str) -> ObjectRef:
    return ObjectRef("v1", "Namespace", None, name)


COMMANDS = (model, train, certs)  # registered in cli/main.py
