"""`hybrid-knative bundle create | verify | inspect | import`: air-gap bundles (docs/airgap.md)."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from hybrid_knative.airgap import bundle as bundle_mod
from hybrid_knative.airgap import signing
from hybrid_knative.airgap.importer import Target, import_images
from hybrid_knative.catalog import load_catalog
from hybrid_knative.cli.common import handle_errors, make_status, release_option, verbosity_options
from hybrid_knative.config import Config, SnapPaths
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.bundle import BundleContents, bundle_contents, bundle_options
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore, http_fetch
from hybrid_knative.wiring import functions_bundle

__all__ = ["BundleContents", "bundle", "bundle_contents"]
ROCM_OPTION = "ml-rocm"  # components/kserve_rocm's bundle option (the ROCm serving images)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hybrid-knative"


def _arches(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return bundle_mod.check_arches([a.strip() for a in value.split(",") if a.strip()])
    except ConfigError as exc:
        raise click.BadParameter(f"{exc.brief}; {exc.resolution}") from None


@click.group()
def bundle() -> None:
    """Air-gap bundles: everything `enable` needs (images + pinned upstream files), verified, in one file.

    \b
    On a connected machine:  hybrid-knative bundle create -o site.bundle --arch amd64,arm64
    On the air-gapped node:  sudo microk8s enable hybrid-knative --bundle site.bundle
    """


@bundle.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The bundle file to write (atomically).")
@click.option("--arch", "arches", default="amd64,arm64", show_default=True, callback=_arches,
              help="Comma-separated architectures every image must provide.")
@click.option("--knative", callback=release_option, help="Knative release line. Default: the newest.")
@click.option("--with", "extras", multiple=True,
              type=click.Choice(sorted([*bundle_options(), functions_bundle.OPTION])),
              help="Also bundle optional components' images (repeatable). `functions`: the function templates' "
              "base images and a wheelhouse (the ROS 2 bridge's wheels + --requirements) for `deploy --offline`. "
              "`ml`: KServe, the CPU runtimes, the model store, the Training Operator. `ml-rocm`: also the ROCm "
              "serving images (vLLM, PyTorch; amd64 only, 10-20 GB each; implies ml) — needed by `enable --with ml "
              "--bundle` on an AMD GPU host.")
@click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="With --with functions: bundle this wheelhouse instead of building one (pip wheel needs the "
              "package index).")
@click.option("--requirements", "requirements", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="With --with functions: also bundle the wheels of this requirements file (repeatable).")
@click.option("--source-registry", help="Pull from this mirror instead of each image's registry "
              "(HOST[:PORT][/PREFIX]; http://HOST:PORT for plain HTTP).")
@click.option("--registries-conf", type=click.Path(path_type=Path, dir_okay=False),
              help="containers-registries.conf(5) file for skopeo (mirrors per registry).")
@click.option("--images-from", type=click.Path(path_type=Path, dir_okay=False), hidden=True,
              help="Bundle exactly the images listed in this file (one per line) instead of the derived list.")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False),
              help="Sign the bundle with this Ed25519 private key (`bundle keygen`; must be mode 0600).")
@verbosity_options
@handle_errors
def create(verbose: int, quiet: bool, output: Path, arches: tuple[str, ...], knative: str | None,
           extras: tuple[str, ...], wheelhouse: Path | None, requirements: tuple[Path, ...],
           source_registry: str | None, registries_conf: Path | None, images_from: Path | None,
           sign_key: Path | None) -> None:
    """Pull every image (all steps, MicroK8s's own, the smoke test) into one verified bundle file.

    Tags are resolved to digests first (skopeo inspect) and images copied by digest; bundle.json records them.
    """
    status = make_status(verbose, quiet)
    key = signing.load_private_key(sign_key) if sign_key is not None else None
    bundle_mod.check_output(output)  # before the (slow) rendering
    if shutil.which("skopeo") is None:
        raise ConfigError("skopeo is not installed", resolution="sudo apt install skopeo (the snap ships it)")
    source = bundle_mod.Source.parse(source_registry, registries_conf)
    catalog = load_catalog()
    state = _state_dir()
    store = UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,), cache_dir=state / "upstream-cache", fetch=http_fetch)
    config = Config(knative=knative or catalog.releases[0].line, state_dir=state)
    with_functions = functions_bundle.OPTION in extras
    if (wheelhouse or requirements) and not with_functions:
        raise ConfigError("--wheelhouse and --requirements go with --with functions", resolution="add it")
    extras = tuple(e for e in extras if e != functions_bundle.OPTION)
    if ROCM_OPTION in extras:
        status.warn(f"--with {ROCM_OPTION}: the ROCm serving images are 10-20 GB each (amd64 only); the bundle "
                    "grows by tens of GB and the pull takes long (progress below)")
    with status.step("List the images the install uses"):
        contents = bundle_contents(config, extras, store=store, status=status, images_from=images_from)
        status.detail(f"{len(contents.images)} images")
    upstream = [(f.path, store.path(f)) for f in contents.files]
    release = contents.release
    images = list(contents.images)
    components = dict(contents.components)
    with tempfile.TemporaryDirectory(prefix="hk-bundle-wheels-") as tmp:
        if with_functions:
            images = sorted({*images, *functions_bundle.images()}, key=str)
            with status.step("Gather the wheelhouse for offline function and ROS 2 bridge builds"):
                wheels = functions_bundle.wheelhouse(Path(tmp), Runner(), given=wheelhouse, requirements=requirements)
            upstream += functions_bundle.upstream_entries(wheels)
            components.update(functions_bundle.component_record())
        manifest = bundle_mod.create(output, images, arches=arches, upstream=upstream,
                                     knative=[release.line], components=components, source=source,
                                     runner=Runner(), status=status, only_on=contents.only_on, sign_key=key)
    if key is not None:
        click.echo(f"signed with key {signing.fingerprint(key.public_key())}")
    click.echo(f"{output}: Knative {release.line}, {len(manifest.images)} images for {', '.join(arches)}, "
               f"{len(manifest.files)} files, {output.stat().st_size} bytes")


def trust_option(fn: Any) -> Any:
    return click.option("--trust", "trust", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
                        help="Require a valid signature by this Ed25519 public key (.pub from `bundle keygen`; "
                        "repeatable). Default: the files in $HYBRID_KNATIVE_TRUSTED_KEYS, if set.")(fn)


def _trusted(trust: tuple[Path, ...]) -> list[signing.PublicKey] | None:
    return [signing.load_public_key(p) for p in trust] if trust else None


@bundle.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The private key file to write (0600); the public key goes to OUTPUT.pub.")
@handle_errors
def keygen(output: Path) -> None:
    """Create an Ed25519 key pair to sign bundles with (`bundle create --sign-key`)."""
    fp = signing.keygen(output)
    click.echo(f"private key {output} (keep it secret), public key {output}.pub (give it to sites: --trust)")
    click.echo(f"fingerprint {fp}")


@bundle.command()
@click.argument("file", type=click.Path(path_type=Path))
@trust_option
@verbosity_options
@handle_errors
def verify(verbose: int, quiet: bool, file: Path, trust: tuple[Path, ...]) -> None:
    """Check every entry's sha256 and size, nothing missing or extra, the upstream files against this
    version's pinned sha256, and (with --trust) the signature. Exit 0 only when intact."""
    status = make_status(verbose, quiet)
    report = bundle_mod.VerifyReport()
    with status.step(f"Verify {file.name}"):
        manifest = bundle_mod.verify(file, on_entry=lambda name: status.note(name), trusted=_trusted(trust),
                                     report=report)
    if report.signed_by and report.trusted:
        signed = f"signed by trusted key {report.signed_by}"
    elif report.signed_by:
        signed = f"signed by key {report.signed_by} (NOT checked: pass --trust KEY.pub)"
    else:
        signed = "not signed"
    click.echo(f"{file}: OK — {len(manifest.images)} images, {len(manifest.files)} entries verified; {signed}")


@bundle.command()
@click.argument("file", type=click.Path(path_type=Path))
@handle_errors
def inspect(file: Path) -> None:
    """Table of contents (from bundle.json; run `bundle verify` to check the content)."""
    m = bundle_mod.read_manifest(file)
    click.echo(f"knative:    {', '.join(m.knative)}")
    click.echo(f"components: {', '.join(f'{k} {v}' for k, v in sorted(m.components.items()))}")
    click.echo(f"arches:     {', '.join(m.arches)}")
    click.echo(f"created by: {m.created_by}")
    total = sum(e.size for e in m.files.values())
    click.echo(f"entries:    {len(m.files)} ({total} bytes), {len(m.blob_names())} blobs")
    click.echo("IMAGES")
    for image in m.images:
        click.echo(f"  {image.name}\n    digest {image.digest}  platforms {', '.join(sorted(image.platforms))}")
    click.echo("UPSTREAM FILES")
    for path in m.upstream_paths:
        click.echo(f"  {path}")


@bundle.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--node", "this_node", is_flag=True,
              help="Import into this node's containerd only (microk8s ctr) instead of every node.")
@click.option("--registry-mirror", metavar="HOST:PORT", help="Push to this registry (e.g. localhost:32000) and "
              "point this node's containerd at it for docker.io, gcr.io, ghcr.io, quay.io, registry.k8s.io.")
@click.option("--ctr", "ctr_command", hidden=True, help="ctr command line to use instead of microk8s ctr.")
@click.option("--certs-dir", type=click.Path(path_type=Path, file_okay=False), hidden=True,
              help="containerd certs.d folder (default $SNAP_DATA/args/certs.d).")
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the unpacked bundle and the resume state are kept.")
@click.option("--functions-registry", default="localhost:32000", show_default=True, metavar="HOST:PORT",
              help="Bundles made --with functions: push the function base images here (the cluster registry "
              "`deploy --offline` builds from).")
@trust_option
@verbosity_options
@handle_errors
def import_(verbose: int, quiet: bool, file: Path, this_node: bool, registry_mirror: str | None,
            ctr_command: str | None, certs_dir: Path | None, state_dir: Path | None, functions_registry: str,
            trust: tuple[Path, ...]) -> None:
    """Verify the bundle, then import its images (all platforms kept). Re-run to resume."""
    status = make_status(verbose, quiet)
    snap = SnapPaths.from_environ(dict(os.environ))
    if this_node and registry_mirror:
        raise ConfigError("--node and --registry-mirror cannot be combined", resolution="choose one")
    if registry_mirror:
        target = Target.registry(registry_mirror, snap, certs_dir)
    elif this_node or ctr_command:
        target = Target.node(snap, shlex.split(ctr_command) if ctr_command else None)
    else:
        target = Target.cluster(snap)
    state = state_dir or snap.state_dir
    with status.step(f"Verify and unpack {file.name}"):
        unpacked = bundle_mod.unpack(file, state / "bundles", trusted=_trusted(trust))
    report = import_images(unpacked, target, runner=Runner(), status=status, state_dir=state)
    click.echo(f"{len(report.imported)} images imported, {len(report.skipped)} already imported")
    if functions_bundle.has_functions(unpacked):
        registry = registry_mirror or functions_registry
        pushed, wheels = functions_bundle.import_functions(unpacked, registry, state, runner=Runner(), status=status,
                                                           pushed_already=registry_mirror is not None)
        click.echo(f"function builds: {len(pushed)} base images pushed to {registry}"
                   + (f"; wheelhouse at {wheels}" if wheels else ""))
        click.echo(f"  build offline: hybrid-knative deploy --offline --registry {registry}"
                   + (f" --wheelhouse {wheels}" if wheels else ""))
    if report.hosts_files:
        click.echo("containerd on this node now pulls through the mirror; files written:")
        for path in report.hosts_files:
            click.echo(f"  {path}")
        click.echo("On every other node run the same command with --registry-mirror (the images are already "
                   "pushed; it only writes the files), then restart containerd: "
                   "`sudo snap restart microk8s.daemon-containerd`.")
