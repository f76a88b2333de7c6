"""Hand `microk8s enable|disable hybrid-knative ARGS…` to the hybrid-knative runtime.

Standard library only, Python ≥ 3.10: MicroK8s runs its addon hooks with its own Python 3.10,
which lacks our dependencies. This module finds (or, first time only, builds) the runtime and
runs `<runtime> enable|disable ARGS…`, keeping the arguments verbatim and the exit code.

Where the runtime comes from, first match wins:
  1. $HYBRID_KNATIVE_BIN (must be an executable file);
  2. `hybrid-knative` on the host's PATH ($REAL_PATH, else $PATH), never one inside $SNAP;
  3. the venv $SNAP_COMMON/hybrid-knative/venv when its stamp matches this repository;
  4. a new such venv, pip-installed from this repository: offline from <repo>/wheelhouse when
     that folder exists, else from the package index.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

PREFIX = "hybrid-knative: "
COMMAND = "hybrid-knative"
DIST_NAME = "hybrid-knative"
LOCK_FILE = ("requirements", "lock.txt")  # pinned dependencies with their sha256 (pip --require-hashes)
INSTALL_HINT = "sudo snap install hybrid-knative --classic"
STAMP_NAME = "hybrid-knative-source.json"
STAMP_FORMAT = 1
VENV_SUBDIR = ("hybrid-knative", "venv")
PIP_TAIL_LINES = 25

# The addon repository clone: <repo>/addons/hybrid-knative/_shim.py
REPO_ROOT = Path(os.path.realpath(__file__)).parent.parent.parent


class ShimError(Exception):
    """An expected failure: printed as a short message (no traceback), then exit `code`."""

    def __init__(self, brief: str, details: str = "", resolution: str = "", code: int = 1) -> None:
        super().__init__(brief)
        self.brief = brief
        self.details = details
        self.resolution = resolution
        self.code = code


def say(message: str) -> None:
    print(f"{PREFIX}{message}", file=sys.stderr, flush=True)


def report(err: ShimError) -> None:
    say(err.brief)
    for line in err.details.splitlines():
        print(f"    {line}", file=sys.stderr)
    if err.resolution:
        say(f"to fix: {err.resolution}")
    sys.stderr.flush()


# ---------------------------------------------------------------------------- finding the runtime


def _is_inside(path: str, folder: str) -> bool:
    """True when `path` (as given or with symlinks resolved) lies inside `folder`."""
    if not folder:
        return False
    roots = {os.path.abspath(folder), os.path.realpath(folder)}
    for candidate in {os.path.abspath(path), os.path.realpath(path)}:
        for root in roots:
            if root != os.sep and (candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)):
                return True
    return False


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def runtime_from_env(env: Mapping[str, str]) -> str | None:
    value = env.get("HYBRID_KNATIVE_BIN", "")
    if not value:
        return None
    if not _is_executable_file(value):
        raise ShimError(
            f"HYBRID_KNATIVE_BIN={value} is not an executable file",
            resolution="point HYBRID_KNATIVE_BIN at an installed hybrid-knative command, or unset it",
        )
    return os.path.abspath(value)


def runtime_on_path(env: Mapping[str, str]) -> str | None:
    """`hybrid-knative` on the host's own PATH, skipping anything inside MicroK8s's snap."""
    search = env.get("REAL_PATH") or env.get("PATH", "")
    snap = env.get("SNAP", "")
    for folder in search.split(os.pathsep):
        if not folder:
            continue  # an empty entry means the working directory: never trust it
        candidate = os.path.join(folder, COMMAND)
        if _is_executable_file(candidate) and not _is_inside(candidate, snap):
            return candidate
    return None


def venv_dir(env: Mapping[str, str]) -> Path:
    common = env.get("SNAP_COMMON", "")
    if not common:
        raise ShimError(
            "no hybrid-knative runtime found, and SNAP_COMMON is not set to build one in",
            details="this script is meant to be run by `microk8s enable|disable hybrid-knative`",
            resolution=f"install the runtime (`{INSTALL_HINT}`) or set HYBRID_KNATIVE_BIN",
        )
    return Path(common).joinpath(*VENV_SUBDIR)


# ------------------------------------------------------------------------ the venv and its stamp


def repo_version(repo: Path) -> str:
    """`version = "…"` of the [project] table of <repo>/pyproject.toml (a regex: no tomllib in 3.10)."""
    try:
        text = (repo / "pyproject.toml").read_text(encoding="utf-8")
    except OSError as exc:
        raise ShimError(
            f"cannot read {repo / 'pyproject.toml'}: {exc.strerror or exc}",
            details="the addon repository should contain the whole hybrid-knative project",
            resolution="re-add the repository: `sudo microk8s addons repo add hybrid-knative <url> --force`",
        ) from None
    project = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    section = project.group(1) if project else text
    found = re.search(r"""^version\s*=\s*["']([^"'\n]+)["']""", section, re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def wanted_stamp(repo: Path) -> dict[str, object]:
    # The interpreter is part of the stamp: a venv points at the Python that made it, and
    # MicroK8s's Python moves with every snap revision ($SNAP/usr/bin/python3).
    return {"format": STAMP_FORMAT, "version": repo_version(repo), "python": sys.executable}


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def venv_is_current(venv: Path, stamp: Mapping[str, object]) -> bool:
    try:
        recorded = json.loads((venv / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        recorded == dict(stamp)
        and _is_executable_file(str(venv_bin(venv, COMMAND)))
        and os.path.exists(venv_bin(venv, "python"))  # follows the symlink to the base interpreter
    )


def _pip_package_dir() -> Path | None:
    """Where this interpreter's own pip lives (MicroK8s's Python has one), to lend it to the venv."""
    try:
        spec = importlib.util.find_spec("pip")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / "__main__.py").is_file() else None


def child_python_env(env: Mapping[str, str]) -> dict[str, str]:
    """For Pythons we start ourselves: none of MicroK8s's (or anyone's) Python paths."""
    clean = dict(env)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        clean.pop(name, None)
    if env.get("REAL_PATH"):
        clean["PATH"] = env["REAL_PATH"]
    return clean


def _run(argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc}"
    return done.returncode, done.stdout.decode("utf-8", "replace")


def _tail(output: str) -> str:
    lines = [line for line in output.rstrip().splitlines() if line.strip()]
    return "\n".join(lines[-PIP_TAIL_LINES:])


def _wheelhouse_has_runtime(wheelhouse: Path) -> bool:
    prefix = DIST_NAME.replace("-", "_").lower() + "-"
    return any(p.name.lower().startswith(prefix) and p.suffix == ".whl" for p in wheelhouse.iterdir())


def _ignore_for_copy(folder: str, names: list[str]) -> set[str]:
    skip = {".git", "wheelhouse", "build", "dist", "__pycache__", ".venv", ".mypy_cache", ".ruff_cache",
            ".pytest_cache"}
    return {n for n in names if n in skip or n.endswith(".egg-info")}


def _failed(what: str, rc: int, output: str, repo: Path, wheelhouse: Path | None, *,
            installing: bool = True) -> ShimError:
    where = f"offline, from {wheelhouse}" if wheelhouse else "from the Python package index"
    where = f", installing {where}" if installing else ""
    if wheelhouse:
        offline = "; or complete the wheelhouse (the hybrid-knative wheel and all its dependencies)"
    else:
        offline = f"; on a host without internet, put the wheels in {repo / 'wheelhouse'}"
    return ShimError(
        f"could not prepare the hybrid-knative runtime: {what} failed (exit code {rc}{where})",
        details=_tail(output) or "(no output)",
        resolution=f"install the runtime with `{INSTALL_HINT}` and re-run the command, or set "
        f"HYBRID_KNATIVE_BIN to a hybrid-knative executable{offline}",
    )


def _create_venv(venv: Path, env: Mapping[str, str], repo: Path) -> dict[str, str]:
    """Make an empty venv; return the environment under which `<venv>/bin/python -m pip` works."""
    pip_env = child_python_env(env)
    pip_dir = _pip_package_dir()
    if pip_dir is not None:
        # Fast path: a venv without pip, driven by this interpreter's pip (same Python version).
        # Only pip itself goes on PYTHONPATH, so the snap's other packages can't satisfy our deps.
        rc, out = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], pip_env)
        if rc != 0:
            raise _failed("`python3 -m venv --without-pip`", rc, out, repo, None, installing=False)
        lend = venv / ".lent-pip"
        lend.mkdir()
        (lend / "pip").symlink_to(pip_dir, target_is_directory=True)
        lent_env = {**pip_env, "PYTHONPATH": str(lend)}
        rc, _ = _run([str(venv_bin(venv, "python")), "-m", "pip", "--version"], lent_env)
        if rc == 0:
            return lent_env
        shutil.rmtree(venv)  # that pip won't run inside a venv: fall back to ensurepip
    rc, out = _run([sys.executable, "-m", "venv", str(venv)], pip_env)
    if rc != 0:
        raise _failed("`python3 -m venv` (with ensurepip)", rc, out, repo, None, installing=False)
    return pip_env


def build_venv(venv: Path, repo: Path, env: Mapping[str, str], stamp: Mapping[str, object]) -> None:
    """Create `venv` and install hybrid-knative into it; leave nothing behind on failure."""
    if venv.exists() or venv.is_symlink():
        _remove(venv)
    wheelhouse = repo / "wheelhouse"
    offline = wheelhouse if wheelhouse.is_dir() else None
    say("Preparing the hybrid-knative runtime (first run only)…")
    try:
        pip_env = _create_venv(venv, env, repo)
        with tempfile.TemporaryDirectory(prefix="hybrid-knative-src-") as scratch:
            argv = [str(venv_bin(venv, "python")), "-m", "pip", "install", "--disable-pip-version-check",
                    "--no-input", "--no-warn-script-location"]
            if offline is not None:
                argv += ["--no-index", "--find-links", str(offline)]
            lock = repo.joinpath(*LOCK_FILE)
            if lock.is_file():
                # exactly the tested dependencies, each checked against its pinned sha256; then the
                # package itself without resolving anything else
                rc, out = _run([*argv, "--require-hashes", "--only-binary=:all:", "-r", str(lock)], pip_env,
                               cwd=scratch)
                if rc != 0:
                    raise _failed("`pip install --require-hashes -r requirements/lock.txt`", rc, out, repo, offline)
                argv.append("--no-deps")
            if offline is not None and _wheelhouse_has_runtime(offline):
                version = str(stamp.get("version", "unknown"))
                argv.append(DIST_NAME if version == "unknown" else f"{DIST_NAME}=={version}")
            else:
                # Build from a copy: the clone stays clean (and may not be writable by us).
                source = Path(scratch) / "src"
                shutil.copytree(repo, source, symlinks=True, ignore=_ignore_for_copy)
                argv.append(str(source))
            rc, out = _run(argv, pip_env, cwd=scratch)
        if rc != 0:
            raise _failed("`pip install`", rc, out, repo, offline)
        if not _is_executable_file(str(venv_bin(venv, COMMAND))):
            raise _failed("`pip install`", 0, f"{venv_bin(venv, COMMAND)} was not installed", repo, offline)
        _remove(venv / ".lent-pip")
        (venv / STAMP_NAME).write_text(json.dumps(dict(stamp), sort_keys=True) + "\n", encoding="utf-8")
    except BaseException:
        _remove(venv)
        raise


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise venv builds (two enables at once must not build the same venv)."""
    with open(folder / ".venv.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv_runtime(env: Mapping[str, str], repo: Path = REPO_ROOT) -> str:
    venv = venv_dir(env)
    stamp = wanted_stamp(repo)
    if venv_is_current(venv, stamp):
        return str(venv_bin(venv, COMMAND))
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        with _locked(venv.parent):
            if not venv_is_current(venv, stamp):  # someone may have built it while we waited
                build_venv(venv, repo, env, stamp)
    except OSError as exc:
        raise ShimError(
            f"could not prepare the hybrid-knative runtime in {venv}: {exc.strerror or exc}",
            details=f"{type(exc).__name__}: {exc}",
            resolution=f"run the command with sudo, or install the runtime with `{INSTALL_HINT}`",
        ) from None
    return str(venv_bin(venv, COMMAND))


def find_runtime(env: Mapping[str, str], repo: Path = REPO_ROOT) -> tuple[str, bool]:
    """(path of the runtime, whether it is our venv on the current interpreter)."""
    found = runtime_from_env(env) or runtime_on_path(env)
    if found:
        return found, False
    return ensure_venv_runtime(env, repo), True


# -------------------------------------------------------------------------------- running it


def runtime_env(env: Mapping[str, str], *, own_venv: bool, repo: Path = REPO_ROOT) -> dict[str, str]:
    """The runtime's environment: the host's PATH and Python paths back, MicroK8s's SNAP* kept.

    SNAP, SNAP_DATA, SNAP_COMMON… stay (the runtime finds MicroK8s's kubeconfig through them); a
    copy goes under HYBRID_KNATIVE_MICROK8S_* because `snap run` (our own snap) resets SNAP*.
    """
    child = child_python_env(env)
    # Our own venv runs on this very interpreter (MicroK8s's): it keeps the LD_LIBRARY_PATH this
    # interpreter runs with now, and gets no host PYTHONPATH (that may be for another Python).
    if not own_venv:
        if env.get("REAL_PYTHONPATH"):
            child["PYTHONPATH"] = env["REAL_PYTHONPATH"]
        if env.get("REAL_LD_LIBRARY_PATH"):
            child["LD_LIBRARY_PATH"] = env["REAL_LD_LIBRARY_PATH"]
        else:
            child.pop("LD_LIBRARY_PATH", None)
    for name in ("SNAP", "SNAP_DATA", "SNAP_COMMON"):
        if env.get(name):
            child[f"HYBRID_KNATIVE_MICROK8S_{name}"] = env[name]
    child["HYBRID_KNATIVE_ADDON_REPO"] = str(repo)
    return child


def wants_usage(args: Sequence[str]) -> bool:
    # MicroK8s swallows -h/--help anywhere; `--usage` anywhere, or `help` as the first word, asks
    # for the runtime's help instead (a later `help` may be an option's value: left alone).
    return "--usage" in args or (len(args) > 0 and args[0] == "help")


def run_runtime(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run the runtime in the foreground; its exit code, or 128+N when signal N ended it."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            with contextlib.suppress(OSError):
                child.send_signal(signum)

    def swallow(_signum: int, _frame: object) -> None:
        """Ctrl-C reaches the runtime through the terminal's process group: let it decide."""

    # Python-level handlers (not SIG_IGN) are reset to the defaults in the child on exec.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, swallow),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGHUP: signal.signal(signal.SIGHUP, forward),
    }
    try:
        try:
            child = subprocess.Popen(list(argv), env=dict(env))
        except OSError as exc:
            raise ShimError(
                f"cannot run {argv[0]}: {exc.strerror or exc}",
                resolution=f"reinstall the runtime (`{INSTALL_HINT}`) or set HYBRID_KNATIVE_BIN",
                code=126 if isinstance(exc, PermissionError) else 127,
            ) from None
        rc = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - rc if rc < 0 else rc


def main(action: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Entry point of addons/hybrid-knative/enable and …/disable; returns the exit code."""
    environ = dict(os.environ if env is None else env)
    try:
        runtime, own_venv = find_runtime(environ)
        argv = [runtime, action, "--help"] if wants_usage(args) else [runtime, action, *args]
        return run_runtime(argv, runtime_env(environ, own_venv=own_venv))
    except ShimError as err:
        report(err)
        return err.code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
