"""`bundle create --with ml-rocm`: the ROCm serving images (vLLM, PyTorch on ROCm; 10-20 GB, amd64 only) only
when asked, and `enable --bundle` on an AMD GPU host naming the missing option.

Real parts: skopeo and a CNCF distribution registry on 127.0.0.1 with tiny amd64-only images standing in at
the ROCm images' paths; the bundle written and read back by the production code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hybrid_knative.airgap import bundle as bundle_mod
from hybrid_knative.catalog import load_catalog
from hybrid_knative.cli.bundle import BundleContents, bundle_contents
from hybrid_knative.components.kserve import install_kserve_runtimes
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.preflight import render_context
from hybrid_knative.manifests.images import ImageRef
from hybrid_knative.ml import images as ml_images
from hybrid_knative.ml.runtimes import PYTORCH_ROCM_IMAGE, VLLM_ROCM_IMAGE
from hybrid_knative.platform.context import HostFacts
from hybrid_knative.progress import Status
from hybrid_knative.system.gpu import GpuReport
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore
from tests.airgap.conftest import Registry, _cli, start_registry
from tests.airgap.tinyimages import write_image

pytestmark = pytest.mark.airgap
ROCM = {ImageRef.parse(VLLM_ROCM_IMAGE), ImageRef.parse(PYTORCH_ROCM_IMAGE)}
QUIET = Status(verbosity=-1)
AMD_HOST = HostFacts(gpu=GpuReport(state="amd", devices=(), render_gid=110, reason="an AMD GPU (test)"))


def contents(*extras: str) -> BundleContents:
    return bundle_contents(Config(knative=load_catalog().releases[0].line, offline=True), extras,
                           store=UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)), status=QUIET)


def test_rocm_images_only_with_ml_rocm_which_implies_ml() -> None:
    plain, ml, rocm, both = contents(), contents("ml"), contents("ml-rocm"), contents("ml", "ml-rocm")
    assert not ROCM & set(ml.images) and not ROCM & set(plain.images)
    assert set(ml.images) > set(plain.images)  # --with ml adds KServe, the runtimes, the store …
    assert set(rocm.images) - set(ml.images) == ROCM  # … and ml-rocm exactly the two ROCm images on top
    assert rocm == both  # ml-rocm implies ml (same images, files, components)
    assert {f.path for f in rocm.files} == {f.path for f in ml.files}
    # amd64 only: a bundle for amd64,arm64 must not ask arm64 of them; the ml images stay multi-arch
    assert {i: a for i, a in rocm.only_on.items() if i in ROCM} == {i: ("amd64",) for i in ROCM}
    assert not ROCM & set(ml.only_on)
    # the catalog entries: pinned tags (no floating `latest`), the same ones the runtimes run
    for image in ROCM:
        assert image.tag and image.tag != "latest" and "rocm" in image.tag
    assert set(map(ImageRef.parse, ml_images.ROCM_IMAGES)) == ROCM


@pytest.fixture(scope="module")
def rocm_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A registry holding tiny amd64-only stand-ins at the ROCm images' paths (like the real ones)."""
    tmp = tmp_path_factory.mktemp("rocm-source")
    reg, proc = start_registry(tmp / "registry")
    layout = tmp / "layout"
    for image in sorted(str(i) for i in ROCM):
        write_image(layout, image, arches=("amd64",), payload=image)
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{layout}:{image}", f"docker://{reg.host}/{image.split('/', 1)[1]}"], check=True)
    yield reg  # type: ignore[misc]
    proc.terminate()
    proc.wait(timeout=10)


def _make(out: Path, images: list[ImageRef], registry: Registry, only_on: dict[ImageRef, tuple[str, ...]]
          ) -> bundle_mod.BundleManifest:
    return bundle_mod.create(out, images, arches=("amd64", "arm64"), upstream=[], knative=["1.23"], components={},
                             source=bundle_mod.Source.parse(f"http://{registry.host}"), runner=Runner(), status=QUIET,
                             only_on=only_on)


def test_a_bundle_with_the_rocm_images_satisfies_enable_on_an_amd_host(rocm_registry: Registry,
                                                                       tmp_path: Path) -> None:
    got = contents("ml-rocm")
    rocm = sorted(ROCM, key=str)
    made = _make(tmp_path / "rocm.bundle", rocm, rocm_registry, {i: got.only_on[i] for i in rocm})
    assert {ImageRef.parse(i.name) for i in made.images} == ROCM
    assert all(set(i.platforms) == {"linux/amd64"} for i in made.images)  # amd64 only, in an amd64+arm64 bundle
    assert install_kserve_runtimes.bundle_lacks_rocm(tmp_path / "rocm.bundle") == []
    rc = render_context(Config(gpu="amd", offline=True, bundle=tmp_path / "rocm.bundle"),
                        load_catalog().max_tested_kubernetes, QUIET, host=AMD_HOST)
    names = {o["metadata"]["name"] for o in install_kserve_runtimes.render(rc)}
    assert {"hk-vllm-rocm", "hk-pytorch-rocm"} <= names


def test_enable_with_a_bundle_without_rocm_names_the_missing_option(made: Path) -> None:
    """`made` (conftest): a real bundle created without --with ml-rocm."""
    assert set(install_kserve_runtimes.bundle_lacks_rocm(made)) == {VLLM_ROCM_IMAGE, PYTORCH_ROCM_IMAGE}
    rc = render_context(Config(gpu="amd", offline=True, bundle=made), load_catalog().max_tested_kubernetes, QUIET,
                        host=AMD_HOST)
    with pytest.raises(ConfigError) as err:
        install_kserve_runtimes.render(rc)
    assert "has no ROCm serving images" in err.value.brief
    assert "--with ml --with ml-rocm" in (err.value.resolution or "") and "--gpu none" in (err.value.resolution or "")
    assert "rocm/vllm" in (err.value.details or "")
    # without a GPU (or with --gpu none) the same bundle is fine: no ROCm runtimes are installed
    rc = render_context(Config(gpu="none", offline=True, bundle=made), load_catalog().max_tested_kubernetes, QUIET)
    assert not any(o["metadata"]["name"].startswith("hk-") for o in install_kserve_runtimes.render(rc))


def test_cli_warns_about_the_size_and_refuses_an_arm64_only_bundle(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    out = tmp_path / "out"
    out.mkdir()
    code, output = _cli("bundle", "create", "-o", str(out / "x.bundle"), "--with", "ml-rocm", "--arch", "arm64",
                        "--knative", "1.23", "--source-registry", "http://127.0.0.1:9")
    assert code != 0
    assert "10-20 GB" in output and "ml-rocm" in output  # the size warning comes first
    assert "runs only on amd64, none of --arch arm64" in output
    assert list(out.iterdir()) == []  # nothing pulled, nothing written
