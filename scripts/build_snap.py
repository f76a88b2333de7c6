#!/usr/bin/env python3
"""Build the hybrid-knative snap without snapcraft: assemble the snap's file tree, then `snap pack`.

    python scripts/build_snap.py [--output dist] [--arch amd64|arm64] [--find-links DIR --no-index]
    python scripts/build_snap.py addon-repo DEST      # only the addon git repository (snapcraft uses this)

The tree (build/snap/prime):
    meta/snap.yaml          generated from snapcraft.yaml (version from pyproject.toml)
    meta/hooks/*            snap/hooks/*
    bin/hk-python           snap/local/hk-python: runs the package on the snap's Python
    bin/hk-buildah          snap/local/hk-buildah: runs the staged buildah with the snap's config
    usr/bin/buildah, usr/lib/…, lib/…   buildah and the libraries it needs, from the build host's
                            Debian archive (`apt-get download` into a cache, `dpkg-deb -x`): what
                            snapcraft.yaml's stage-packages does (see stage_buildah for the differences)
    etc/containers/         policy.json (containers-common) + snap/local/containers/*.conf
    lib/hybrid-knative/site-packages   the package (with its vendored upstream files) and its
                            dependencies, `pip install --target` as wheels for the base's Python
    addon-repo/             a git repository (branches per MicroK8s track) that
                            `microk8s addons repo add` can clone

The vendored upstream files must be present and verified first (`make vendor`).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SITE = "lib/hybrid-knative/site-packages"
# the MicroK8s tracks the addon repository has a branch for (== hybrid_knative.bootstrap.SUPPORTED_TRACKS)
TRACKS = ("1.32", "1.33", "1.34", "1.35", "1.36", "latest")
DEFAULT_BRANCH = "main"
BASE_PYTHON = {"core22": "3.10", "core24": "3.12"}
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}
PIP_PLATFORMS = {
    "amd64": ("manylinux_2_39_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
              "manylinux1_x86_64", "linux_x86_64"),
    "arm64": ("manylinux_2_39_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
              "manylinux2014_aarch64", "linux_aarch64"),
}
# the keys of a snapcraft app that snap.yaml takes as they are
APP_KEYS = ("command", "daemon", "install-mode", "restart-condition", "restart-delay", "stop-timeout",
            "environment", "after", "before", "refresh-mode", "stop-mode", "timer", "passthrough")
LOCK_FILE = "requirements/lock.txt"  # runtime dependencies, pinned with hashes (make lock)
# buildah and what it needs at run time, by their names in the build host's archive (Debian 12 "bookworm",
# what CI runs): buildah's Depends minus glibc/uidmap, and their library closure (`ldd` is checked after
# staging). golang-github-containers-common brings policy.json. No runc/crun: chroot isolation runs RUN
# steps itself, and buildah only Recommends an OCI runtime.
BUILDAH_DEBS = ("buildah", "golang-github-containers-common", "libgpgme11", "libassuan0", "libgpg-error0",
                "libseccomp2", "libdevmapper1.02.1", "libselinux1", "libpcre2-8-0", "libudev1")
DEB_CACHE = REPO / "build" / "snap" / "debs"
DEB_SKIP = ("usr/share/doc", "usr/share/man", "usr/share/lintian", "usr/share/bug")
GLIBC = ("linux-vdso.so", "ld-linux", "libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libresolv.so")
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
REPO_FILES = ("addons.yaml", "addons", "requirements", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "src")


class BuildError(Exception):
    pass


def say(message: str) -> None:
    print(f"build_snap: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def package_version(repo: Path = REPO) -> str:
    text = (repo / "pyproject.toml").read_text(encoding="utf-8")
    project = re.search(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = re.search(r"""^version\s*=\s*["']([^"'\n]+)["']""", project.group(1) if project else "", re.MULTILINE)
    if not found:
        raise BuildError("no [project] version in pyproject.toml")
    return found.group(1)


def load_recipe(repo: Path = REPO) -> dict[str, Any]:
    recipe = yaml.safe_load((repo / "snapcraft.yaml").read_text(encoding="utf-8"))
    if not isinstance(recipe, dict):
        raise BuildError("snapcraft.yaml is not a mapping")
    return recipe


def snap_yaml(recipe: dict[str, Any], version: str, arch: str) -> dict[str, Any]:
    """meta/snap.yaml from snapcraft.yaml's fields."""
    meta: dict[str, Any] = {
        "name": recipe["name"],
        "version": version,
        "summary": recipe["summary"],
        "description": recipe["description"],
        "base": recipe["base"],
        "confinement": recipe["confinement"],
        "grade": recipe.get("grade", "stable"),
        "architectures": [arch],
    }
    if "license" in recipe:
        meta["license"] = recipe["license"]
    meta["apps"] = {name: {k: app[k] for k in APP_KEYS if k in app} for name, app in recipe["apps"].items()}
    return meta


def verify_vendored(repo: Path = REPO) -> int:
    """Every pinned upstream file is vendored with the right sha256 (else: run `make vendor`)."""
    sys.path.insert(0, str(repo / "src"))
    from hybrid_knative.catalog import load_catalog
    from hybrid_knative.upstream import sha256_file

    vendor = repo / "src" / "hybrid_knative" / "_vendor"
    files = load_catalog().all_files()
    for f in files:
        path = vendor / f.path
        if not path.is_file():
            raise BuildError(f"{f.path} is not vendored: run `make vendor` first")
        if sha256_file(path) != f.sha256:
            raise BuildError(f"{f.path} does not match its pinned sha256: run `make vendor` again")
    return len(files)


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {"__pycache__", "_vendor", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    return {n for n in names if n in skip or n.endswith((".egg-info", ".pyc"))}


def build_addon_repo(dest: Path, repo: Path = REPO) -> None:
    """A git repository with the addon index, the shims and the package source (no vendored files:
    the snap's package has them), one commit, a branch per MicroK8s track."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in REPO_FILES:
        source = repo / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=_ignore)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    for hook in ("enable", "disable"):
        (dest / "addons" / "hybrid-knative" / hook).chmod(0o755)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "946684800")
    env = {**os.environ, "GIT_AUTHOR_NAME": "hybrid-knative", "GIT_AUTHOR_EMAIL": "build@hybrid-knative.invalid",
           "GIT_COMMITTER_NAME": "hybrid-knative", "GIT_COMMITTER_EMAIL": "build@hybrid-knative.invalid",
           "GIT_AUTHOR_DATE": f"@{epoch} +0000", "GIT_COMMITTER_DATE": f"@{epoch} +0000",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    git = ["git", "-c", "init.defaultBranch=" + DEFAULT_BRANCH, "-c", "core.fileMode=true"]
    run([*git, "init", "-q"], cwd=dest, env=env)
    run([*git, "add", "-A"], cwd=dest, env=env)
    run([*git, "commit", "-q", "-m", f"hybrid-knative {package_version(repo)} addon repository"], cwd=dest, env=env)
    for track in TRACKS:
        run([*git, "branch", track], cwd=dest, env=env)


def install_packages(site: Path, *, python_version: str, arch: str, pip_args: list[str], repo: Path = REPO) -> None:
    """The package (as a wheel built from a clean copy) + its dependencies, as wheels for the target."""
    with tempfile.TemporaryDirectory(prefix="hk-snap-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (repo / name).is_file():
                shutil.copy2(repo / name, source / name)
        shutil.copytree(repo / "src", source / "src",
                        ignore=lambda d, names: {n for n in names if n in ("__pycache__",) or n.endswith(".egg-info")})
        wheels = Path(scratch) / "wheels"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source), *pip_args])
        (wheel,) = wheels.glob("hybrid_knative-*.whl")
        platforms = [arg for p in PIP_PLATFORMS[arch] for arg in ("--platform", p)]
        target = [*pip, "install", "--quiet", "--no-compile", "--target", str(site), "--only-binary=:all:",
                  "--python-version", python_version, "--implementation", "cp", *platforms, *pip_args]
        # the dependencies exactly as locked (each wheel checked against its sha256), then the package alone
        run([*target, "--require-hashes", "-r", str(repo / LOCK_FILE)])
        run([*target, "--no-deps", str(wheel)])
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts point at the build Python: unused


def host_arch() -> str | None:
    return ARCHES.get(platform.machine())


def cached_deb(cache: Path, package: str, arch: str) -> Path | None:
    """The newest cached .deb of ``package`` for ``arch`` (or arch-independent), by dpkg's version order."""
    found = [p for p in cache.glob(f"{package}_*.deb") if p.name.rsplit("_", 1)[-1] in (f"{arch}.deb", "all.deb")]
    if len(found) > 1 and shutil.which("dpkg"):
        def newer(a: Path, b: Path) -> bool:
            va, vb = (urllib.parse.unquote(p.name.split("_")[1]) for p in (a, b))  # 2%3a1.0 → 2:1.0
            return subprocess.run(["dpkg", "--compare-versions", va, "gt", vb], check=False).returncode == 0
        best = found[0]
        for candidate in found[1:]:
            best = candidate if newer(candidate, best) else best
        return best
    return found[0] if found else None


def fetch_debs(cache: Path, arch: str, packages: tuple[str, ...] = BUILDAH_DEBS) -> list[Path]:
    """The packages' .debs: from the cache, else `apt-get download` (the host's archive) into it. Offline and
    not cached is a BuildError naming what is missing."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if cached_deb(cache, p, arch) is None]
    if missing:
        say(f"downloading {len(missing)} Debian packages for buildah into {cache}: {' '.join(missing)}")
        names = missing if arch == host_arch() else [f"{p}:{arch}" for p in missing]
        if shutil.which("apt-get") is None:
            problem = "apt-get is not available here"
        else:
            done = subprocess.run(["apt-get", "download", *names], cwd=cache, capture_output=True, text=True,
                                  check=False, timeout=600)
            problem = (done.stderr or done.stdout).strip()[-1500:] if done.returncode != 0 else ""
        still = [p for p in packages if cached_deb(cache, p, arch) is None]
        if still:
            raise BuildError(
                f"the snap ships buildah, but these Debian packages ({arch}) are neither cached in {cache} nor "
                f"downloadable: {' '.join(still)}\n{problem}\n"
                "Run the build once with access to the Debian archive (`apt-get download` fills the cache), or "
                "copy the .debs into that folder (--deb-cache). The names are Debian 12's; on another host use "
                "snapcraft (snapcraft.yaml's stage-packages)." + (
                    f" For another architecture: `dpkg --add-architecture {arch} && apt-get update` first."
                    if arch != host_arch() else ""))
    return [p for p in (cached_deb(cache, name, arch) for name in packages) if p is not None]


def stage_buildah(prime: Path, *, arch: str, cache: Path, repo: Path = REPO) -> list[str]:
    """buildah, its libraries and containers-common into the snap's tree, the way snapcraft's stage-packages
    unpack .debs (docs and man pages dropped), plus the wrapper and our container configuration.

    Differences from a snapcraft build (docs/snap.md): snapcraft stages the core24 (Ubuntu 24.04) packages and
    patches every ELF file to core24's loader (enable-patchelf); here the build host's Debian 12 packages are
    staged unpatched, so buildah runs on the host's glibc (classic confinement) with its other libraries from
    the snap (bin/hk-buildah sets LD_LIBRARY_PATH). Returns the staged packages' file names."""
    if shutil.which("dpkg-deb") is None:
        raise BuildError("dpkg-deb is missing (the buildah packages are .debs): build on Debian/Ubuntu, or use "
                         "snapcraft")
    debs = fetch_debs(cache, arch)
    with tempfile.TemporaryDirectory(prefix="hk-debs-") as scratch:
        unpacked = Path(scratch)
        for deb in debs:
            run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        for skip in DEB_SKIP:
            shutil.rmtree(unpacked / skip, ignore_errors=True)
        shutil.copytree(unpacked, prime, symlinks=True, dirs_exist_ok=True)
    if not all((prime / path).is_file() for path in ("usr/bin/buildah", "etc/containers/policy.json")):
        raise BuildError("the staged packages lack usr/bin/buildah or etc/containers/policy.json")
    for conf in sorted((repo / "snap" / "local" / "containers").iterdir()):
        shutil.copy2(conf, prime / "etc" / "containers" / conf.name)
    shutil.copy2(repo / "snap" / "local" / "hk-buildah", prime / "bin" / "hk-buildah")
    (prime / "bin" / "hk-buildah").chmod(0o755)
    if arch == host_arch():
        check_libraries(prime, arch)
    else:
        say(f"not checking buildah's libraries: {arch} binaries do not run on this {platform.machine()} host")
    return [d.name for d in debs]


def check_libraries(prime: Path, arch: str) -> None:
    """Every library buildah needs, but glibc, resolves inside the snap (as bin/hk-buildah runs it)."""
    triplet = TRIPLETS[arch]
    env = {**os.environ, "LD_LIBRARY_PATH": f"{prime}/usr/lib/{triplet}:{prime}/lib/{triplet}"}
    out = run(["ldd", str(prime / "usr" / "bin" / "buildah")], env=env)
    outside = []
    for line in out.splitlines():
        parts = line.split()
        name = parts[0] if parts else ""
        if not name or any(name.startswith(g) or f"/{g}" in name for g in GLIBC):
            continue
        path = parts[2] if len(parts) > 2 and parts[1] == "=>" else ""
        if path == "not" or not Path(path).resolve().is_relative_to(prime.resolve()):
            outside.append(f"{name} => {path or '?'}")
    if outside:
        raise BuildError("buildah needs libraries the snap does not stage (add their packages to BUILDAH_DEBS): "
                         + ", ".join(outside))


def assemble(prime: Path, *, arch: str, pip_args: list[str], repo: Path = REPO,
             deb_cache: Path = DEB_CACHE) -> dict[str, Any]:
    recipe = load_recipe(repo)
    version = package_version(repo)
    if recipe["base"] not in BASE_PYTHON:
        raise BuildError(f"unsupported base {recipe['base']}: expected one of {sorted(BASE_PYTHON)}")
    count = verify_vendored(repo)
    say(f"{count} vendored upstream files verified")
    if prime.exists():
        shutil.rmtree(prime)
    (prime / "meta" / "hooks").mkdir(parents=True)
    meta = snap_yaml(recipe, version, arch)
    (prime / "meta" / "snap.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    for hook in sorted((repo / "snap" / "hooks").iterdir()):
        target = prime / "meta" / "hooks" / hook.name
        shutil.copy2(hook, target)
        target.chmod(0o755)
    (prime / "bin").mkdir()
    shutil.copy2(repo / "snap" / "local" / "hk-python", prime / "bin" / "hk-python")
    (prime / "bin" / "hk-python").chmod(0o755)
    say(f"installing the package and its dependencies for Python {BASE_PYTHON[recipe['base']]} ({arch})")
    install_packages(prime / SITE, python_version=BASE_PYTHON[recipe["base"]], arch=arch, pip_args=pip_args,
                     repo=repo)
    say("creating the addon repository")
    build_addon_repo(prime / "addon-repo", repo)
    staged = stage_buildah(prime, arch=arch, cache=deb_cache, repo=repo)
    say(f"staged buildah from {len(staged)} Debian packages")
    return meta


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["addon-repo"]:
        if len(args_in) != 2:
            print("usage: build_snap.py addon-repo DEST", file=sys.stderr)
            return 2
        try:
            build_addon_repo(Path(args_in[1]))
        except BuildError as exc:
            say(str(exc))
            return 1
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "dist", help="where the .snap goes")
    parser.add_argument("--prime", type=Path, default=REPO / "build" / "snap" / "prime", help="the snap's file tree")
    parser.add_argument("--arch", default=ARCHES.get(platform.machine()), choices=sorted(PIP_PLATFORMS))
    parser.add_argument("--find-links", help="a wheelhouse for pip (with --no-index: fully offline)")
    parser.add_argument("--no-index", action="store_true", help="never ask a package index")
    parser.add_argument("--deb-cache", type=Path, default=DEB_CACHE,
                        help="where buildah's .debs are cached (`apt-get download` fills it when online)")
    args = parser.parse_args(args_in)
    if args.arch is None:
        parser.error(f"unsupported build architecture {platform.machine()}: pass --arch")
    pip_args = [*(["--find-links", args.find_links] if args.find_links else []),
                *(["--no-index"] if args.no_index else [])]
    if shutil.which("snap") is None:
        say("`snap` is not installed: apt install snapd squashfs-tools")
        return 1
    try:
        meta = assemble(args.prime, arch=args.arch, pip_args=pip_args, deb_cache=args.deb_cache)
        args.output.mkdir(parents=True, exist_ok=True)
        out = run(["snap", "pack", str(args.prime), str(args.output)])
    except BuildError as exc:
        say(str(exc))
        return 1
    snap = args.output / f"{meta['name']}_{meta['version']}_{args.arch}.snap"
    say(out.strip())
    print(snap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
