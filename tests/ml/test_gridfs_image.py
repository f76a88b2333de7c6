"""The gridfs:// initializer image, built on the functions' path: real buildah (vfs storage, chroot isolation) from
a local python:3.12-slim look-alike base (a real CPython 3.12 under /usr/local; no network), pymongo from a
wheelhouse made for the image's Python 3.12 (--no-index), pushed to a real
docker-registry on 127.0.0.1 and pinned BY DIGEST in the ClusterStorageContainer (API emulator); then run with
`buildah run --isolation chroot`: real pymongo inside (against no server: a clear failure), and the module's
download path against the one allowed fake, pymongo's GridFS bucket."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybrid_knative.cli.main import cli
from hybrid_knative.components.model_store import install_gridfs_storage
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.ml import gridfs, initializer_image
from hybrid_knative.ml import store as ml_store
from hybrid_knative.platform.context import Context, HostFacts, RenderContext
from hybrid_knative.platform.record import Record
from hybrid_knative.progress import Status
from hybrid_knative.system import wheels
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import UpstreamStore
from hybrid_knative.versions import KubeVersion
from tests.airgap.conftest import Registry
from tests.dev.conftest import Builder, builder, registry, skopeo_digest  # noqa: F401 - fixtures
from tests.dev.python_bases import slim_like_registry  # noqa: F401 - fixture: a python:3.12-slim look-alike
from tests.ml.conftest import MlCluster, install_ml

pytestmark = pytest.mark.integration
WHEELHOUSE = Path(os.environ.get("HK_TEST_GRIDFS_WHEELHOUSE", str(
    Path.home() / ".cache" / "hybrid-knative" / "gridfs-wheelhouse")))
CSC = ("serving.kserve.io/v1alpha1", "clusterstoragecontainers", "hk-gridfs")

# Run inside the image with the image's python: the shipped module downloads a model from an in-memory GridFS
# bucket (the one fake: what pymongo's GridFSBucket would return) and checks every sha256.
FAKE_BUCKET_RUN = r'''
import hashlib, io, json, sys
sys.path.insert(0, "/app")
import gridfs_initializer as gi

model = b"weights" * 100000
files = {"m/model.bin": model}
entries = [{"path": "model.bin", "size": len(model), "sha256": hashlib.sha256(model).hexdigest()}]
lines = "".join(f"{e['sha256']}  {e['path']}\n" for e in entries)
files["m/" + gi.MANIFEST] = json.dumps({"format": gi.MANIFEST_FORMAT, "name": "m", "digest":
    hashlib.sha256(lines.encode()).hexdigest(), "files": entries}).encode()

class Stream(io.BytesIO):
    chunk_size = 4 * 1024 * 1024
    length = 0

class Bucket:
    def open_download_stream_by_name(self, name, revision=-1):
        if name not in files:
            raise KeyError(name)
        return Stream(files[name])

out = sys.argv[-1]
print(gi.download(Bucket(), "m", gi.Path(out)))
print(hashlib.sha256(open(out + "/model.bin", "rb").read()).hexdigest() == entries[0]["sha256"])
'''


@pytest.fixture()
def wheelhouse() -> Path:
    hint = ("(.ci/run makes it with initializer_image.download_wheels: wheels for the image's Python "
            f"{initializer_image.image_python()}; HK_TEST_GRIDFS_WHEELHOUSE moves it)")
    if not WHEELHOUSE.is_dir() or initializer_image.missing_wheels(WHEELHOUSE):
        pytest.skip(f"needs pymongo's wheels in {WHEELHOUSE} {hint}")
    unfit = wheels.unfit_wheels(WHEELHOUSE, initializer_image.image_python(), wheels.machine_arch())
    if "pymongo" in unfit:
        pytest.skip(f"the wheels in {WHEELHOUSE} are not for the image's Python {hint}")
    return WHEELHOUSE


def _context(env: MlCluster, tmp_path: Path) -> Context:
    config = Config(kubeconfig=env.kubeconfig, verify=False, extras=("ml", "ml-gridfs"), gpu="none")
    rc = RenderContext(config=config, release=None, kube_version=KubeVersion.parse("1.34"),  # type: ignore[arg-type]
                       store=UpstreamStore(), host=HostFacts())
    return Context(render=rc, kube=env.kube, record=Record(tmp_path / "record.json", server="emulator"),
                   status=Status(verbosity=-1), runner=Runner(), waits=WaitPolicy(timeout=10, interval=0.05))


@pytest.fixture()
def gridfs_cluster(ml_cluster_env: MlCluster, tmp_path: Path) -> Iterator[MlCluster]:
    install_ml(ml_cluster_env.kube, ml_store.Credentials.generate())
    step_objs = install_gridfs_storage.render(_context(ml_cluster_env, tmp_path).render)
    install_gridfs_storage.run(_context(ml_cluster_env, tmp_path), step_objs)
    yield ml_cluster_env


def _buildah_run(buildah_base: list[str], ctr: str, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    extra = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return subprocess.run([*buildah_base, "run", "--isolation", "chroot", *extra, ctr, "--", *args],
                          capture_output=True, text=True, timeout=300, check=False)


def test_gridfs_image_is_built_pushed_pinned_by_digest_and_runs(
        builder: Builder, slim_like_registry: Registry, wheelhouse: Path, gridfs_cluster: MlCluster,  # noqa: F811
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = gridfs_cluster
    before = env.server.get(*CSC)["spec"]["container"]["image"]
    assert before == "localhost:32000/hybrid-knative/gridfs-initializer:0.2.0" and not initializer_image.is_pinned(
        before)
    # 1. the CLI, as a user runs it: its own buildah storage, the base image from the mirror, our wheelhouse
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    result = CliRunner().invoke(cli, ["model", "gridfs-image", "--registry", builder.registry.host, "--wheelhouse",
                                      str(wheelhouse), "--base-mirror", slim_like_registry.host, *env.cli_args()],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    image = result.output.strip().splitlines()[-1]
    repo = f"{builder.registry.host}/hybrid-knative/gridfs-initializer"
    assert image.startswith(f"{repo}@sha256:") and initializer_image.is_pinned(image)
    assert skopeo_digest(f"{repo}:{initializer_image.VERSION}") == image.split("@")[1]  # what the registry stored
    assert env.server.get(*CSC)["spec"]["container"]["image"] == image  # pinned by digest in the cluster

    # 2. a re-run of enable keeps the pinned image (not the rendered tag)
    objs = install_gridfs_storage.render(_context(env, tmp_path).render)
    install_gridfs_storage.run(_context(env, tmp_path), objs)
    assert env.server.get(*CSC)["spec"]["container"]["image"] == image

    # 3. the same sources built again (another storage) give the same digest: nothing changes in the cluster
    buildah = dataclasses.replace(builder.buildah, mirrors={"docker.io": slim_like_registry.host})
    context = initializer_image.build_context(tmp_path / "ctx", Runner(), wheelhouse=wheelhouse)
    assert initializer_image.build_and_push(buildah, context, builder.registry.host) == image

    # 4. run it (buildah run, chroot isolation)
    base = ["buildah", "--root", str(buildah.root), "--runroot", str(buildah.runroot), "--storage-driver", "vfs"]
    ctr = subprocess.run([*base, "from", initializer_image.LOCAL_TAG], capture_output=True, text=True, check=True,
                         timeout=300).stdout.strip().splitlines()[-1]
    try:
        info = _buildah_run(base, ctr, "python3", "-c", "import gridfs, pymongo, os; "
                            "print(pymongo.version, os.getuid(), os.path.exists('/tmp/wheels'))")
        assert info.returncode == 0, info.stderr
        version, uid, wheels_left = info.stdout.split()
        assert version.startswith("4.") and uid == "1000" and wheels_left == "False"  # non-root, no wheelhouse left
        py = _buildah_run(base, ctr, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
        assert py.stdout.strip() == initializer_image.image_python() == "3.12", py.stderr  # the base's own 3.12
        # the entrypoint's clear refusals: no URI; a server that is not there (real pymongo, real socket)
        usage = _buildah_run(base, ctr, "python3", "/app/gridfs_initializer.py")
        assert usage.returncode == 2 and "usage: gridfs_initializer" in usage.stderr
        no_uri = _buildah_run(base, ctr, "python3", "/app/gridfs_initializer.py", "gridfs://db/m", "/tmp/out")
        assert no_uri.returncode == 1 and "MONGODB_URI is not set" in no_uri.stderr
        from tests.harness.seaweedfs import free_port

        nowhere = _buildah_run(base, ctr, "python3", "/app/gridfs_initializer.py", "gridfs://db/m", "/tmp/out",
                               env={"MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"})
        assert nowhere.returncode == 1 and "model 'm' has no manifest in GridFS (ServerSelectionTimeoutError" in \
            nowhere.stderr, nowhere.stderr
        # the download path of the shipped module, with the image's python, against the fake bucket
        out = _buildah_run(base, ctr, "python3", "-c", FAKE_BUCKET_RUN, "/tmp/out")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-2:] == [str(len(b"weights" * 100000)), "True"]
    finally:
        subprocess.run([*base, "rm", ctr], capture_output=True, timeout=120, check=False)


def test_gridfs_image_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a registry"):
        initializer_image.destination("http://localhost:32000")
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "dnspython-2.8.0-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(ConfigError, match="lacks pymongo"):
        initializer_image.build_context(tmp_path / "ctx", Runner(), wheelhouse=tmp_path / "wh")
    with pytest.raises(ConfigError) as err:  # a pip that fails, as without the package index
        initializer_image.download_wheels(tmp_path / "wh2", Runner(), python="/bin/false")
    assert "--wheelhouse" in (err.value.resolution or "")
    assert not initializer_image.is_pinned(gridfs.INITIALIZER_IMAGE)
    assert initializer_image.is_pinned("r:5000/hybrid-knative/gridfs-initializer@sha256:" + "a" * 64)
