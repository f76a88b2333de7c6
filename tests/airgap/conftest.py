"""Real parts for the air-gap tests: a CNCF distribution registry on 127.0.0.1, a containerd daemon with
its own socket (ctr is the boundary behind MicroK8s's ctr/images wrappers), tiny multi-arch images."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airgap.tinyimages import write_image

pytestmark = pytest.mark.airgap

# tiny stand-ins published under real image names' paths (tags only: a digest cannot be faked)
IMAGES = (
    "gcr.io/knative-releases/knative.dev/serving/cmd/activator:v1.23.0",
    "gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.23.0",
    "docker.io/envoyproxy/envoy:v1.37.2",
    "registry.k8s.io/pause:3.10",
)


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt install skopeo docker-registry containerd)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check, what: str, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def,type-arg]
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.returncode}")
        if check():
            return
        time.sleep(0.025)
    raise RuntimeError(f"{what} did not start")


@dataclasses.dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    root: Path


def start_registry(tmp: Path) -> tuple[Registry, subprocess.Popen]:  # type: ignore[type-arg]
    _need("docker-registry")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=(tmp / "log").open("wb"))

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    _wait_for(up, "docker-registry", proc)
    return Registry(f"127.0.0.1:{port}", tmp), proc


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg, proc = start_registry(tmp_path / "registry")
    yield reg
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def source_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry seeded with tiny images at the real images' paths (shared base layer → dedup)."""
    _need("docker-registry", "skopeo")
    tmp = tmp_path_factory.mktemp("source")
    reg, proc = start_registry(tmp / "registry")
    layout = tmp / "layout"
    for image in IMAGES:
        write_image(layout, image, arches=("amd64", "arm64", "s390x"), payload=image)
    for image in IMAGES:
        path = image.split("/", 1)[1]
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{layout}:{image}", f"docker://{reg.host}/{path}"], check=True)
    yield reg
    proc.terminate()
    proc.wait(timeout=10)


@dataclasses.dataclass
class Containerd:
    socket: Path
    root: Path

    @property
    def ctr(self) -> list[str]:
        return ["ctr", "-a", str(self.socket), "-n", "k8s.io"]

    def run(self, *args: str) -> str:
        return subprocess.run([*self.ctr, *args], check=True, capture_output=True, text=True).stdout

    def images(self) -> dict[str, str]:
        out = {}
        for line in self.run("images", "ls", "-q").split():
            out[line] = line
        return out

    def content(self) -> set[str]:
        return {line.split()[0] for line in self.run("content", "ls", "-q").split("\n") if line.strip()}


def start_containerd(root: Path) -> tuple[Containerd, subprocess.Popen]:  # type: ignore[type-arg]
    """A containerd daemon with its own socket, root and state under ``root`` (CRI off); ready for ctr."""
    root.mkdir(parents=True)
    sock = root / "sock"
    cfg = root / "config.toml"
    cfg.write_text(f'version = 2\nroot = "{root / "root"}"\nstate = "{root / "state"}"\n'
                   f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n'
                   f'[ttrpc]\n  address = "{root / "ttrpc.sock"}"\n')
    proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=(root / "log").open("wb"))
    _wait_for(lambda: sock.exists(), "containerd", proc)
    ctd = Containerd(sock, root)
    for _ in range(100):
        if subprocess.run([*ctd.ctr, "version"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    return ctd, proc


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[Containerd]:
    _need("containerd", "ctr")
    ctd, proc = start_containerd(tmp_path / "ctd")
    yield ctd
    proc.terminate()
    proc.wait(timeout=10)


def _cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from hybrid_knative.cli.main import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="session")
def made(source_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    listing = tmp / "images.txt"
    listing.write_text("\n".join(IMAGES) + "\n")
    out = tmp / "site.bundle"
    code, output = _cli("bundle", "create", "-o", str(out), "--arch", "amd64,arm64", "--knative", "1.23",
                       "--source-registry", f"http://{source_registry.host}", "--images-from", str(listing))
    assert code == 0, output
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []  # no temp left behind
    return out


