"""Daemonless image builds and pushes with buildah (vfs storage, chroot isolation), through the runner.

buildah needs no daemon and no root-owned overlay mounts: ``--storage-driver vfs`` plus
``--isolation chroot`` work in a snap, in CI containers and on a plain MicroK8s node. Our builds use
their own storage folders (never the user's podman/buildah storage, whose driver may differ).

The digest deployed is the one the registry stored: ``buildah push --digestfile``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from hybrid_knative.errors import CommandError, ConfigError, PermanentError
from hybrid_knative.system.runner import Result, Runner

INSTALL_HINT = ("install buildah: it ships inside the hybrid-knative snap (`sudo snap install hybrid-knative "
                "--classic`); elsewhere `sudo apt install buildah` (Debian/Ubuntu) or `sudo dnf install buildah`")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def is_local_registry(registry: str) -> bool:
    """A registry on this machine (plain HTTP is normal there: MicroK8s's addon, a test registry)."""
    host = registry.split("/", 1)[0]
    return host.rsplit(":", 1)[0] in LOCAL_HOSTS if not host.startswith("[") else host.startswith("[::1]")


def default_storage() -> tuple[Path, Path]:
    """(root, runroot) of our own image storage: $SNAP_USER_COMMON or XDG data, and a run folder."""
    base = os.environ.get("SNAP_USER_COMMON") or os.environ.get("XDG_DATA_HOME") or str(
        Path.home() / ".local" / "share")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or str(Path(tempfile.gettempdir()) / f"hybrid-knative-{os.getuid()}")
    return Path(base) / "hybrid-knative" / "containers", Path(runtime) / "hybrid-knative-containers"


def registries_conf(mirrors: Mapping[str, str]) -> str:
    """A containers-registries.conf(5) v2 file that sends each prefix (e.g. docker.io) to a mirror first."""
    lines = ['unqualified-search-registries = ["docker.io"]', ""]
    for prefix, mirror in sorted(mirrors.items()):
        lines += ["[[registry]]", f'prefix = "{prefix}"', f'location = "{prefix}"', "", "[[registry.mirror]]",
                  f'location = "{mirror}"', f"insecure = {'true' if is_local_registry(mirror) else 'false'}", ""]
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    image: str  # the local name it was committed as
    image_id: str
    log: str


@dataclasses.dataclass(frozen=True)
class Buildah:
    """buildah with our own vfs storage. ``mirrors`` maps registry prefixes to mirrors (offline builds)."""

    runner: Runner
    root: Path
    runroot: Path
    mirrors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    binary: str = "buildah"
    build_timeout: float = 1800.0
    volumes: tuple[str, ...] = ()  # bind mounts for every build's RUN steps (e.g. an offline wheelhouse)
    policy: Path | None = None  # containers-policy.json when /etc/containers has none (inside the snap)

    @classmethod
    def default(cls, runner: Runner, *, mirrors: Mapping[str, str] | None = None) -> Buildah:
        """buildah from the snap when we run in it (its wrapper bin/hk-buildah: the snap's vfs storage.conf,
        containers.conf, registries.conf, chroot isolation and libraries), else from PATH."""
        root, runroot = default_storage()
        snap = os.environ.get("SNAP")
        binary, policy = "buildah", None
        if snap and (Path(snap) / "usr" / "bin" / "buildah").exists():
            wrapper = Path(snap) / "bin" / "hk-buildah"
            binary = str(wrapper if wrapper.exists() else Path(snap) / "usr" / "bin" / "buildah")
            if not Path("/etc/containers/policy.json").exists():
                policy = Path(snap) / "etc" / "containers" / "policy.json"
        return cls(runner, root, runroot, dict(mirrors or {}), binary=binary, policy=policy)

    def _policy(self) -> list[str]:
        return ["--signature-policy", str(self.policy)] if self.policy is not None else []

    def check_available(self) -> None:
        if shutil.which(self.binary, path=(self.runner.env or os.environ).get("PATH")) is None:
            raise ConfigError("buildah is not installed, so functions cannot be built here (no Docker daemon needed)",
                              resolution=INSTALL_HINT)

    def _base(self) -> list[str]:
        return [self.binary, "--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    @contextmanager
    def _env(self) -> Iterator[Runner]:
        """A runner whose buildah sees our registries.conf (only when mirrors are configured)."""
        if not self.mirrors:
            yield self.runner
            return
        with tempfile.TemporaryDirectory(prefix="hk-registries-") as tmp:
            conf = Path(tmp) / "registries.conf"
            conf.write_text(registries_conf(self.mirrors))
            yield self.runner.with_env({"CONTAINERS_REGISTRIES_CONF": str(conf)})

    def run(self, args: Sequence[str], *, timeout: float | None = None, check: bool = True) -> Result:
        self.check_available()
        with self._env() as runner:
            return runner.run([*self._base(), *args], timeout=timeout, check=check)

    def bud(self, context: Path, dockerfile: Path, tag: str, *, volumes: Sequence[str] = (),
            pull_tls_verify: bool = True) -> BuildResult:
        """Build ``dockerfile`` in ``context``. A failure raises with the tail of the build log."""
        # --timestamp 0: reproducible (same context → same digest → a re-deploy writes nothing)
        args = ["bud", "--isolation", "chroot", "--layers=false", "--timestamp", "0", *self._policy(),
                "-f", str(dockerfile), "-t", tag]
        if not pull_tls_verify:
            args.append("--tls-verify=false")
        for volume in (*self.volumes, *volumes):
            args += ["--volume", volume]
        args.append(str(context))
        try:
            result = self.run(args, timeout=self.build_timeout)
        except CommandError as exc:
            log = (exc.stdout + "\n" + exc.stderr).strip()
            tail = "\n".join(log.splitlines()[-25:])
            raise PermanentError(f"the image build failed (buildah exit code {exc.returncode}): {dockerfile}",
                                 details=tail, resolution=_build_hint(log)) from None
        image_id = (result.stdout.strip().splitlines() or [""])[-1].strip()
        return BuildResult(tag, image_id, result.stdout + result.stderr)

    def push(self, image: str, destination: str, *, tls_verify: bool | None = None) -> str:
        """Push to ``destination`` (registry/repo:tag); return the manifest digest the registry stored."""
        verify = not is_local_registry(destination) if tls_verify is None else tls_verify
        with tempfile.TemporaryDirectory(prefix="hk-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            args = ["push", *self._policy(), f"--tls-verify={'true' if verify else 'false'}", "--digestfile",
                    str(digest_file),
                    image, f"docker://{destination}"]
            try:
                self.run(args, timeout=self.build_timeout)
            except CommandError as exc:
                registry = destination.split("/", 1)[0]
                raise PermanentError(f"pushing {image} to {registry} failed",
                                     details="\n".join((exc.stderr or exc.stdout).strip().splitlines()[-8:]),
                                     resolution=f"check that the registry {registry} is up and reachable from this "
                                     "machine (MicroK8s: `microk8s enable registry`), or pass --registry") from None
            digest = digest_file.read_text().strip() if digest_file.exists() else ""
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise PermanentError(f"buildah did not report the digest of {destination}",
                                 details=f"digest file content: {digest!r}")
        return digest

    def remove_image(self, image: str) -> None:
        self.run(["rmi", "-f", image], check=False, timeout=120)


def _build_hint(log: str) -> str:
    lowered = log.lower()
    if "pinging container registry" in lowered or "initializing source" in lowered or "manifest unknown" in lowered:
        return ("the base image could not be pulled: online, check network access; offline, import the bundle "
                "made with `bundle create --with functions` so the base images are in the local registry")
    if "no such file or directory" in lowered and "dockerfile" in lowered:
        return "check the Dockerfile path in the project file"
    return "fix the Dockerfile or the code it builds (the build log's last lines are above); rebuild with -v for all"
