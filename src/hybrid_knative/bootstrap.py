"""`hybrid-knative bootstrap`: from a fresh Ubuntu box to a live service, one idempotent step at a time.

preflight (read-only) → install MicroK8s if missing → wait until ready → register the addon
repository (a root-owned copy of the snap's own git repository) → `microk8s enable hybrid-knative
FLAGS…` → verify with `microk8s status --addon hybrid-knative` → the URL of the smoke service.
Re-running does only what is missing. The `snap` and `microk8s` CLIs are driven through the Runner.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from hybrid_knative.catalog import COMPONENTS_DIR
from hybrid_knative.errors import (
    CommandError,
    ConfigError,
    DeadlineExceeded,
    HybridError,
    PermanentError,
    TemporaryError,
)
from hybrid_knative.progress import Status
from hybrid_knative.system.runner import Result, Runner

ADDON = "hybrid-knative"
REPO_NAME = "hybrid-knative"
DEFAULT_CHANNEL = "1.35/stable"
RISKS = ("stable", "candidate", "beta", "edge")
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
SNAP_BIN = Path("/snap/bin")
PORTS = (80, 443, 25000)  # ingress http/https, MicroK8s's cluster agent
GIB = 1024**3
MIN_MEMORY = 2 * GIB
RECOMMENDED_MEMORY = 4 * GIB
MIN_DISK = 10 * GIB
RECOMMENDED_DISK = 20 * GIB
# the tracks the snap's addon repository has a branch for (scripts/build_snap.py creates them)
SUPPORTED_TRACKS = ("1.32", "1.33", "1.34", "1.35", "1.36", "latest")

_TRACK = re.compile(r"^(latest|[1-9]\d*\.\d{1,3}(?:-[a-z0-9]+)?)$")
_BRANCH = re.compile(r"^[a-z0-9][a-z0-9+._-]{0,63}$")
_URL = re.compile(r"https?://[^\s'\"<>]+")
_ADDON_NOT_FOUND = re.compile(r"not found|no such addon|unknown addon", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Channel:
    """A snap channel `<track>/<risk>[/<branch>]`."""

    track: str
    risk: str
    branch: str | None = None

    @classmethod
    def parse(cls, text: str) -> Channel:
        parts = text.strip().split("/")
        hint = "use <track>/<risk>[/<branch>], e.g. 1.35/stable or latest/edge (risk: " + "|".join(RISKS) + ")"
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"not a snap channel: {text!r}", resolution=hint)
        track, risk = parts[0], parts[1]
        if not _TRACK.match(track):
            raise ConfigError(f"not a MicroK8s track: {track!r} in channel {text!r}",
                              resolution="the track is a Kubernetes minor version such as 1.35, or latest")
        if risk not in RISKS:
            raise ConfigError(f"unknown risk {risk!r} in channel {text!r}", resolution=hint)
        branch = parts[2] if len(parts) == 3 else None
        if branch is not None and not _BRANCH.match(branch):
            raise ConfigError(f"not a channel branch: {branch!r} in channel {text!r}", resolution=hint)
        return cls(track, risk, branch)

    def __str__(self) -> str:
        return "/".join(p for p in (self.track, self.risk, self.branch) if p)


@dataclasses.dataclass(frozen=True)
class Host:
    """Host probes (injectable: tests pass their own)."""

    machine: Callable[[], str] = lambda: platform.machine()
    memory_bytes: Callable[[], int] = lambda: _meminfo_total()
    disk_free_bytes: Callable[[Path], int] = lambda path: shutil.disk_usage(_existing(path)).free
    port_busy: Callable[[int], bool] = lambda port: _port_busy("127.0.0.1", port)
    is_root: Callable[[], bool] = lambda: os.geteuid() == 0


def _meminfo_total(path: Path = Path("/proc/meminfo")) -> int:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise PermanentError("cannot read the memory size from /proc/meminfo")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _port_busy(host: str, port: int) -> bool:
    """True when something accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """Validated bootstrap input."""

    channel: Channel
    channel_given: bool = False  # the user asked for this channel (vs. the default)
    enable_args: tuple[str, ...] = ()
    addon_repo: Path  # the snap's own addon repository ($SNAP/addon-repo): a git repository
    repo_copy: Path  # where the root-owned copy goes ($SNAP_COMMON/addon-repo)
    ready_timeout: int = 600
    enable_timeout: float = 3600.0
    install_timeout: float = 1800.0
    ports: tuple[int, ...] = PORTS
    disk_path: Path = Path("/var/snap")
    snap: str = "snap"
    microk8s: str = "microk8s"

    def __post_init__(self) -> None:
        if not 1 <= self.ready_timeout <= 24 * 3600:
            raise ConfigError(f"--ready-timeout must be between 1 and 86400 seconds, got {self.ready_timeout}")
        for arg in self.enable_args:
            if arg in ("-h", "--help"):
                raise ConfigError("--help cannot be passed to enable (MicroK8s intercepts it)",
                                  resolution="see `hybrid-knative enable --help` for the enable flags")


@dataclasses.dataclass(frozen=True)
class Outcome:
    installed_microk8s: bool
    added_repo: bool
    enabled: bool
    url: str | None
    track: str


# --------------------------------------------------------------------------------------- steps


def preflight(opts: Options, host: Host, runner: Runner, status: Status) -> bool:
    """Read-only checks. Returns whether MicroK8s is already installed."""
    with status.step("Preflight: root, snapd, architecture, memory, disk, ports"):
        if not host.is_root():
            raise ConfigError("bootstrap must run as root", resolution="run `sudo hybrid-knative bootstrap`")
        machine = host.machine()
        arch = ARCHES.get(machine)
        if arch is None:
            raise ConfigError(f"unsupported architecture: {machine}",
                              resolution="hybrid-knative supports amd64 (x86_64) and arm64 (aarch64) hosts")
        status.detail(f"architecture {arch}")
        version = _snap(runner, opts, ["version"], what="ask snapd for its version",
                        resolution="install snapd: `sudo apt install snapd`, then re-run")
        snapd = _field(version.stdout, "snapd")
        if snapd is None or snapd == "unavailable":
            raise PermanentError("snapd is not running", details=version.stdout.strip() or None,
                                 resolution="start it with `sudo systemctl enable --now snapd.socket` "
                                 "(install it with `sudo apt install snapd`), then re-run")
        status.detail(f"snapd {snapd}")
        memory = host.memory_bytes()
        if memory < MIN_MEMORY:
            raise PermanentError(f"not enough memory: {memory / GIB:.1f} GiB",
                                 resolution=f"MicroK8s with Knative needs at least {MIN_MEMORY // GIB} GiB of RAM "
                                 f"({RECOMMENDED_MEMORY // GIB} GiB recommended)")
        if memory < RECOMMENDED_MEMORY:
            status.warn(f"{memory / GIB:.1f} GiB of RAM: {RECOMMENDED_MEMORY // GIB} GiB is recommended")
        disk = host.disk_free_bytes(opts.disk_path)
        if disk < MIN_DISK:
            raise PermanentError(f"not enough free disk under {opts.disk_path}: {disk / GIB:.1f} GiB",
                                 resolution=f"free at least {MIN_DISK // GIB} GiB "
                                 f"({RECOMMENDED_DISK // GIB} GiB recommended) and re-run")
        if disk < RECOMMENDED_DISK:
            status.warn(f"{disk / GIB:.1f} GiB free under {opts.disk_path}: {RECOMMENDED_DISK // GIB} GiB recommended")
        installed = installed_channel(runner, opts) is not None
        busy = [port for port in opts.ports if host.port_busy(port)]
        if busy and not installed:
            listed = ", ".join(str(p) for p in busy)
            raise PermanentError(f"port(s) {listed} already in use, and MicroK8s is not installed",
                                 details="MicroK8s needs 80 and 443 (ingress) and 25000 (cluster agent)",
                                 resolution=f"stop whatever listens there (`sudo ss -ltnp 'sport = :{busy[0]}'` "
                                 "shows it), then re-run")
        if busy:
            status.detail(f"ports {busy} in use: taken to be MicroK8s's own")
    return installed


def installed_channel(runner: Runner, opts: Options) -> str | None:
    """MicroK8s's tracking channel (`snap list microk8s`), or None when it is not installed."""
    result = runner.run([opts.snap, "list", "microk8s"], check=False, timeout=60)
    if result.returncode != 0:
        if "no matching snaps" in (result.stderr + result.stdout):
            return None
        raise CommandError(result.argv, result.returncode, stdout=result.stdout, stderr=result.stderr,
                           resolution="check that snapd works: `snap list`")
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    if len(lines) < 2 or "Tracking" not in lines[0]:
        raise PermanentError("cannot read the output of `snap list microk8s`", details=result.stdout.strip())
    column = lines[0].index("Tracking")
    row = next((r for r in lines[1:] if r and r[0] == "microk8s"), None)
    if row is None or len(row) <= column:
        raise PermanentError("cannot read the output of `snap list microk8s`", details=result.stdout.strip())
    return row[column]


def install_microk8s(opts: Options, runner: Runner, status: Status, *, installed: bool) -> tuple[bool, str]:
    """(whether we installed it, the track it follows)."""
    if installed:
        tracking = installed_channel(runner, opts) or str(opts.channel)
        track = tracking.split("/")[0]
        with status.step(f"MicroK8s already installed (tracking {tracking})"):
            if opts.channel_given and track != opts.channel.track:
                status.warn(f"MicroK8s follows {tracking}, not {opts.channel}; leaving it as it is "
                            f"(`sudo snap refresh microk8s --channel {opts.channel}` changes it)")
        return False, track
    with status.step(f"Install MicroK8s ({opts.channel})"):
        _snap(runner, opts, ["install", "microk8s", "--classic", "--channel", str(opts.channel)],
              what=f"install MicroK8s from {opts.channel}", timeout=opts.install_timeout,
              resolution=f"check the channel exists (`snap info microk8s`) and that this host can reach the "
              f"snap store, then re-run; or install it yourself: `sudo snap install microk8s --classic "
              f"--channel {opts.channel}`")
    return True, opts.channel.track


def wait_ready(opts: Options, runner: Runner, status: Status) -> None:
    with status.step(f"Wait for MicroK8s to be ready (up to {opts.ready_timeout}s)"):
        argv = [resolve(opts.microk8s), "status", "--wait-ready", "--timeout", str(opts.ready_timeout)]
        try:
            result = runner.run(argv, check=False, timeout=opts.ready_timeout + 60)
        except TemporaryError:
            result = Result(tuple(argv), -1, "", "")
        if result.returncode != 0 or "microk8s is running" not in result.stdout:
            raise DeadlineExceeded(
                f"MicroK8s did not become ready within {opts.ready_timeout}s",
                details=(result.stdout + result.stderr).strip() or None,
                resolution="look at `sudo microk8s inspect`; then re-run bootstrap (it continues where it "
                "stopped), with a longer --ready-timeout on a slow machine")


def head_branch(repo: Path) -> str:
    """The branch a git repository's HEAD is on (read from .git/HEAD: no git needed)."""
    git = repo / ".git" if (repo / ".git").is_dir() else repo
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        raise PermanentError(f"{repo} is not a git repository",
                             resolution="reinstall the hybrid-knative snap") from None
    if not head.startswith("ref: refs/heads/"):
        raise PermanentError(f"{repo} has a detached HEAD", resolution="reinstall the hybrid-knative snap")
    return head.removeprefix("ref: refs/heads/")


def branches(repo: Path) -> set[str]:
    git = repo / ".git" if (repo / ".git").is_dir() else repo
    names = {p.relative_to(git / "refs" / "heads").as_posix()
             for p in (git / "refs" / "heads").rglob("*") if p.is_file()}
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].startswith("refs/heads/"):
                names.add(parts[1].removeprefix("refs/heads/"))
    return names


def reference_for(repo: Path, track: str, status: Status) -> str:
    """The repository's branch for the MicroK8s track, else the branch its HEAD is on."""
    if track in branches(repo):
        return track
    default = head_branch(repo)
    status.detail(f"no branch for MicroK8s track {track} in the addon repository: using {default}")
    return default


def _tree_identity(repo: Path) -> str:
    git = repo / ".git"
    parts = [(git / "HEAD").read_text(encoding="utf-8")]
    for ref in sorted((git / "refs").rglob("*")):
        if ref.is_file():
            parts.append(f"{ref.relative_to(git)} {ref.read_text(encoding='utf-8').strip()}")
    if (git / "packed-refs").is_file():
        parts.append((git / "packed-refs").read_text(encoding="utf-8"))
    return "\n".join(parts)


def refresh_copy(source: Path, dest: Path) -> bool:
    """Keep ``dest`` a root-owned copy of the git repository ``source``; True when it changed."""
    if not (source / ".git").is_dir():
        raise PermanentError(f"the addon repository {source} is missing or not a git repository",
                             resolution="reinstall the snap: `sudo snap refresh hybrid-knative` "
                             "(or `sudo snap install hybrid-knative --classic`)")
    if (dest / ".git").is_dir() and _tree_identity(dest) == _tree_identity(source):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".addon-repo-", dir=dest.parent))
    try:
        shutil.copytree(source, scratch / "repo", symlinks=True)
        old = dest.parent / f".{dest.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            dest.rename(old)
        (scratch / "repo").rename(dest)
        if old.exists():
            shutil.rmtree(old)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def registered_repos(runner: Runner, opts: Options) -> dict[str, str]:
    """`microk8s addons repo list`: name → source."""
    result = _microk8s(runner, opts, ["addons", "repo", "list"], what="list MicroK8s's addon repositories")
    repos: dict[str, str] = {}
    for line in result.stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1].isdigit():
            repos[parts[0]] = parts[2]
    return repos


def add_repo(opts: Options, runner: Runner, status: Status, track: str) -> bool:
    repos = registered_repos(runner, opts)
    if REPO_NAME in repos:
        with status.step(f"Addon repository {REPO_NAME} already registered"):
            status.detail(f"source {repos[REPO_NAME]}")
        return False
    with status.step(f"Register the addon repository {REPO_NAME}"):
        changed = refresh_copy(opts.addon_repo, opts.repo_copy)
        status.detail(f"{'copied' if changed else 'kept'} {opts.addon_repo} → {opts.repo_copy}")
        reference = reference_for(opts.repo_copy, track, status)
        _microk8s(runner, opts, ["addons", "repo", "add", REPO_NAME, str(opts.repo_copy), "--reference", reference],
                  what="register the addon repository", timeout=300,
                  resolution=f"see the message above; `sudo microk8s addons repo add {REPO_NAME} {opts.repo_copy} "
                  f"--reference {reference} --force` retries by hand")
    return True


def addon_state(runner: Runner, opts: Options) -> str:
    """'enabled', 'disabled', or the raw output when MicroK8s does not know the addon (it exits 0 then)."""
    result = _microk8s(runner, opts, ["status", "--addon", ADDON], what="ask MicroK8s for the addon's status")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if lines and lines[-1] in ("enabled", "disabled") and not _ADDON_NOT_FOUND.search(result.stdout):
        return lines[-1]
    return (result.stdout + result.stderr).strip() or "(no output)"


def install_state(runner: Runner, hybrid_knative: str) -> str | None:
    """The ``enabled:`` line of `hybrid-knative status` (yes, incomplete, no…); None when it cannot tell."""
    try:
        result = runner.run([resolve(hybrid_knative), "status"], check=False, timeout=120)
    except HybridError:
        return None
    value = _field(result.stdout.replace("enabled:", "enabled: ", 1), "enabled:")
    return value.split()[0] if value else None


def enable(opts: Options, runner: Runner, status: Status, hybrid_knative: str = "hybrid-knative") -> tuple[bool, str]:
    """(whether enable ran, its output)."""
    if addon_state(runner, opts) == "enabled":
        # MicroK8s counts the addon enabled from enable's first change on (the marker says "incomplete"
        # until it finished) and then skips `microk8s enable`: a half-way install is finished by repair
        if install_state(runner, hybrid_knative) == "incomplete":
            with status.step(f"Repair {ADDON}: a previous enable stopped half-way (this takes a few minutes)"):
                result = _checked(runner, [resolve(hybrid_knative), "repair", *opts.enable_args],
                                  what=f"repair {ADDON}", timeout=opts.enable_timeout,
                                  resolution="see the output above; `sudo hybrid-knative doctor` explains; "
                                  "`sudo microk8s disable hybrid-knative` takes the install back")
                for line in (result.stdout + result.stderr).strip().splitlines()[-20:]:
                    status.detail(line)
            return True, result.stdout
        with status.step(f"Addon {ADDON} already enabled"):
            pass
        return False, ""
    flags = " ".join(opts.enable_args)
    with status.step(f"Enable {ADDON}{' ' + flags if flags else ''} (this takes a few minutes)"):
        result = _microk8s(runner, opts, ["enable", ADDON, *opts.enable_args], what=f"enable {ADDON}",
                           timeout=opts.enable_timeout,
                           resolution="see the output above; `sudo microk8s enable hybrid-knative` reports "
                           "progress step by step; re-run bootstrap when fixed")
        output = result.stdout + result.stderr
        if _ADDON_NOT_FOUND.search(output):
            raise PermanentError(f"MicroK8s does not know the addon {ADDON}", details=output.strip(),
                                 resolution=f"check `sudo microk8s addons repo list` shows {REPO_NAME}; "
                                 f"`sudo microk8s addons repo remove {REPO_NAME}` and re-run bootstrap")
        for line in output.strip().splitlines()[-20:]:
            status.detail(line)
    return True, result.stdout


def verify(opts: Options, runner: Runner, status: Status) -> None:
    with status.step(f"Verify: MicroK8s reports {ADDON} enabled"):
        state = addon_state(runner, opts)
        if state == "enabled":
            return
        if state == "disabled":
            raise PermanentError(f"MicroK8s reports {ADDON} as disabled after enable",
                                 resolution="the install did not finish its verification; run "
                                 "`sudo hybrid-knative status` to see which component is not ready, "
                                 "then re-run bootstrap")
        raise PermanentError(f"MicroK8s does not know the addon {ADDON}", details=state,
                             resolution=f"check `sudo microk8s addons repo list` shows {REPO_NAME}; "
                             f"`sudo microk8s addons repo remove {REPO_NAME}` and re-run bootstrap")


def find_url(*outputs: str) -> str | None:
    """The last http(s) URL printed (enable ends with the smoke service's URL)."""
    urls = [u.rstrip(".,;)") for text in outputs for u in _URL.findall(text)]
    return urls[-1] if urls else None


def _smoke_service() -> tuple[str, str]:
    """The smoke KService's name and namespace (components/smoke/smoke.yaml; smoke.py is a sibling layer)."""
    doc = yaml.safe_load((COMPONENTS_DIR / "smoke" / "smoke.yaml").read_text(encoding="utf-8"))
    return str(doc["name"]), str(doc["namespace"])


def service_url(enable_output: str, runner: Runner, status: Status, opts: Options) -> str | None:
    """The smoke service's URL: from enable's output, else (a re-run: enable did not run) from the
    Knative Service itself through MicroK8s's kubectl — `hybrid-knative status` prints no URL."""
    url = find_url(enable_output)
    if url:
        return url
    name, namespace = _smoke_service()
    argv = [resolve(opts.microk8s), "kubectl", "get", "ksvc", name, "-n", namespace,
            "-o", "jsonpath={.status.url}"]
    try:
        result = runner.run(argv, check=False, timeout=120)
    except HybridError as exc:
        status.detail(f"`microk8s kubectl get ksvc` failed: {exc.brief}")
        return None
    url = find_url(result.stdout) if result.returncode == 0 else None
    if url is None:
        status.detail(f"no smoke service URL (enabled with --no-verify?): {(result.stderr or result.stdout).strip()}")
    return url


def bootstrap(opts: Options, status: Status, *, runner: Runner | None = None, host: Host | None = None,
              hybrid_knative: str = "hybrid-knative") -> Outcome:
    runner = runner or Runner()
    host = host or Host()
    installed = preflight(opts, host, runner, status)
    did_install, track = install_microk8s(opts, runner, status, installed=installed)
    wait_ready(opts, runner, status)
    added = add_repo(opts, runner, status, track)
    enabled, output = enable(opts, runner, status, hybrid_knative)
    verify(opts, runner, status)
    url = service_url(output, runner, status, opts)
    return Outcome(installed_microk8s=did_install, added_repo=added, enabled=enabled, url=url, track=track)


# ------------------------------------------------------------------------------------ helpers


def _field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] == name:
            return parts[1].strip()
    return None


def _snap(runner: Runner, opts: Options, args: Sequence[str], *, what: str, resolution: str,
          timeout: float = 120) -> Result:
    return _checked(runner, [opts.snap, *args], what=what, resolution=resolution, timeout=timeout)


def resolve(command: str) -> str:
    """A command on PATH, else in /snap/bin (a fresh `snap install` may not be on sudo's PATH yet)."""
    if os.sep in command or shutil.which(command):
        return command
    snap_bin = SNAP_BIN / command
    return str(snap_bin) if snap_bin.is_file() else command


def _microk8s(runner: Runner, opts: Options, args: Sequence[str], *, what: str, timeout: float = 120,
              resolution: str | None = None) -> Result:
    return _checked(runner, [resolve(opts.microk8s), *args], what=what, timeout=timeout,
                    resolution=resolution or "see the message above; `sudo microk8s inspect` helps")


def _checked(runner: Runner, argv: Sequence[str], *, what: str, resolution: str, timeout: float) -> Result:
    try:
        return runner.run(argv, timeout=timeout)
    except CommandError as exc:
        raise CommandError(exc.argv, exc.returncode, stdout=exc.stdout, stderr=exc.stderr,
                           resolution=f"could not {what}: {resolution}") from None
    except PermanentError as exc:
        if exc.brief.startswith("command not found"):
            raise PermanentError(f"{exc.brief} (needed to {what})", resolution=resolution) from None
        raise
