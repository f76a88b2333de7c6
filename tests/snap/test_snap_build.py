"""snapcraft.yaml against the snapcraft schema, and the real `.snap` that `make snap`'s fallback builds
(scripts/build_snap.py → `snap pack`), inspected with `unsquashfs` and `snap info --verbose`."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from hybrid_knative import bootstrap as boot
from hybrid_knative.catalog import load_catalog
from hybrid_knative.upstream import sha256_file
from tests.unit.test_addon_repo import validate_repo

REPO = Path(__file__).resolve().parents[2]
SITE = "lib/hybrid-knative/site-packages"
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]

needs_snap_tools = pytest.mark.skipif(
    not (shutil.which("snap") and shutil.which("unsquashfs") and shutil.which("git")),
    reason="snap pack / unsquashfs / git missing (apt install snapd squashfs-tools git)")


def test_snapcraft_yaml_passes_the_snapcraft_schema() -> None:
    exe = shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    done = subprocess.run([exe, "--builtin-schema", "vendor.snapcraft", str(REPO / "snapcraft.yaml")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    exe = shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    recipe = yaml.safe_load((REPO / "snapcraft.yaml").read_text())
    recipe["confinement"] = "sandboxed"
    bad = tmp_path / "snapcraft.yaml"
    bad.write_text(yaml.safe_dump(recipe))
    done = subprocess.run([exe, "--builtin-schema", "vendor.snapcraft", str(bad)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0


def test_recipe_promises() -> None:
    recipe = yaml.safe_load((REPO / "snapcraft.yaml").read_text())
    assert recipe["confinement"] == "classic" and recipe["base"] == "core24"
    apps = recipe["apps"]
    assert apps["hybrid-knative"]["command"] == "bin/hk-python hybrid_knative"
    assert apps["agent"]["command"] == "bin/hk-python hybrid_knative agent"
    assert apps["hub"]["command"] == "bin/hk-python hybrid_knative hub start"
    for daemon in ("agent", "hub"):
        assert apps[daemon]["daemon"] == "simple" and apps[daemon]["install-mode"] == "disable"
    assert set(recipe["platforms"]) == {"amd64", "arm64"}


def test_build_script_tracks_match_bootstrap(build_snap: ModuleType) -> None:
    assert tuple(build_snap.TRACKS) == boot.SUPPORTED_TRACKS


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the .snap, its extracted tree)."""
    if not (shutil.which("snap") and shutil.which("unsquashfs") and shutil.which("git")):
        pytest.skip("snap pack / unsquashfs / git missing (apt install snapd squashfs-tools git)")
    root = tmp_path_factory.mktemp("snapbuild")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "build_snap.py"), "--output", str(root / "dist"),
                           "--prime", str(root / "prime")], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    snap = Path(done.stdout.strip().splitlines()[-1])
    assert snap.is_file()
    subprocess.run(["unsquashfs", "-q", "-d", str(root / "x"), str(snap)], check=True, capture_output=True,
                   timeout=300)
    return snap, root / "x"


@needs_snap_tools
def test_snap_info(built: tuple[Path, Path]) -> None:
    snap, _ = built
    info = subprocess.run(["snap", "info", "--verbose", str(snap)], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    assert re.search(r"^name:\s+hybrid-knative$", info, re.MULTILINE)
    assert re.search(rf"^version:\s+{re.escape(VERSION)} classic$", info, re.MULTILINE)
    assert re.search(r"^base:\s+core24$", info, re.MULTILINE)
    assert re.search(r"^commands:\n  - hybrid-knative$", info, re.MULTILINE)
    assert re.search(r"hybrid-knative\.agent:\s+simple, disabled, inactive", info)
    assert re.search(r"hybrid-knative\.hub:\s+simple, disabled, inactive", info)
    assert re.search(r"confinement:\s+classic", info)
    assert snap.name == f"hybrid-knative_{VERSION}_{snap.name.rsplit('_', 1)[1]}"


@needs_snap_tools
def test_snap_listing(built: tuple[Path, Path]) -> None:
    snap, _ = built
    listing = set(subprocess.run(["unsquashfs", "-l", str(snap)], capture_output=True, text=True, check=True,
                                 timeout=60).stdout.split())
    for path in ("meta/snap.yaml", "meta/hooks/install", "meta/hooks/configure", "meta/hooks/remove",
                 "bin/hk-python", "addon-repo/.git/HEAD", "addon-repo/addons.yaml",
                 "addon-repo/addons/hybrid-knative/enable", f"{SITE}/hybrid_knative/__main__.py",
                 f"{SITE}/hybrid_knative/snaphooks.py"):
        assert f"squashfs-root/{path}" in listing, path


@needs_snap_tools
def test_snap_yaml_and_hooks(built: tuple[Path, Path]) -> None:
    _, tree = built
    meta: dict[str, Any] = yaml.safe_load((tree / "meta" / "snap.yaml").read_text())
    recipe = yaml.safe_load((REPO / "snapcraft.yaml").read_text())
    assert meta["version"] == VERSION
    assert meta["apps"]["agent"]["environment"] == {"HYBRID_KNATIVE_ENROLMENT_FILE": "$SNAP_COMMON/join/enrolment"}
    assert {name: app["command"] for name, app in meta["apps"].items()} == \
        {name: app["command"] for name, app in recipe["apps"].items()}
    for name in ("install", "configure", "remove"):
        hook = tree / "meta" / "hooks" / name
        assert hook.read_bytes() == (REPO / "snap" / "hooks" / name).read_bytes()
        assert hook.stat().st_mode & 0o111 == 0o111
    assert (tree / "bin" / "hk-python").stat().st_mode & 0o111 == 0o111


@needs_snap_tools
def test_vendored_files_have_the_pinned_sha256(built: tuple[Path, Path]) -> None:
    _, tree = built
    files = load_catalog().all_files()
    assert files
    for f in files:
        path = tree / SITE / "hybrid_knative" / "_vendor" / f.path
        assert path.is_file(), f.path
        assert sha256_file(path) == f.sha256, f.path


@needs_snap_tools
def test_dependencies_are_wheels_for_the_bases_python(built: tuple[Path, Path]) -> None:
    _, tree = built
    site = tree / SITE
    for package in ("click", "yaml", "jinja2", "sh", "requests", "lightkube"):
        assert (site / package).exists(), package
    compiled = [p.name for p in site.rglob("*.so")]
    assert compiled and all("cpython-312" in name or "abi3" in name for name in compiled), compiled
    assert list(site.glob(f"hybrid_knative-{VERSION}.dist-info"))


@needs_snap_tools
def test_addon_repo_is_a_git_repo_microk8s_can_clone(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, tree = built
    source = tree / "addon-repo"
    heads = subprocess.run(["git", "-c", f"safe.directory={source}", "-C", str(source), "branch", "--format",
                            "%(refname:short)"], capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert set(heads) == {"main", *boot.SUPPORTED_TRACKS}
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "1.35", str(source), str(clone)], check=True, timeout=60)
    validate_repo(clone)  # MicroK8s's checks after `addons repo add`
    modes = subprocess.run(["git", "-C", str(clone), "ls-files", "-s", "addons/hybrid-knative"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    assert re.search(r"^100755 \S+ 0\taddons/hybrid-knative/enable$", modes, re.MULTILINE), modes
    assert re.search(r"^100755 \S+ 0\taddons/hybrid-knative/disable$", modes, re.MULTILINE), modes
    assert (clone / "pyproject.toml").is_file() and (clone / "src" / "hybrid_knative" / "__init__.py").is_file()
    assert not (clone / "src" / "hybrid_knative" / "_vendor").exists()  # upstream files live in the package
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True,
                            check=True, timeout=60).stdout
    assert status == ""


def _python312() -> str | None:
    for candidate in ("python3.12", *sorted(Path("/root/.pyenv/versions").glob("3.12*/bin/python3.12"))):
        found = shutil.which(str(candidate))
        if found:
            done = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                                  text=True, timeout=30, check=False)
            if done.stdout.strip() == "(3, 12)":
                return found
    return None


@needs_snap_tools
def test_packaged_cli_runs_on_python_312(built: tuple[Path, Path]) -> None:
    """The snap's own packages, run the way bin/hk-python runs them (its -I -c program), on Python 3.12."""
    python = _python312()
    if python is None:
        pytest.skip("no Python 3.12 here to stand in for core24's")
    _, tree = built
    wrapper = (tree / "bin" / "hk-python").read_text()
    program = re.search(r"-I -c '(.*?)' ", wrapper, re.DOTALL)
    assert program, wrapper
    done = subprocess.run([python, "-I", "-c", program.group(1), str(tree / SITE), "hybrid_knative", "versions"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "KNATIVE" in done.stdout and "1.23" in done.stdout
    done = subprocess.run([python, "-I", "-c", program.group(1), str(tree / SITE), "hybrid_knative", "bootstrap",
                           "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "--channel" in done.stdout


# --- buildah in the snap (scripts/build_snap.py stage_buildah: Debian's packages, bin/hk-buildah) ------------

BUILDAH_LIBS = ("libgpgme.so.11", "libassuan.so.0", "libgpg-error.so.0", "libseccomp.so.2", "libdevmapper.so.1.02.1")


@needs_snap_tools
def test_snap_ships_buildah_its_libraries_and_config(built: tuple[Path, Path]) -> None:
    snap, tree = built
    listing = subprocess.run(["unsquashfs", "-l", str(snap)], capture_output=True, text=True, check=True,
                             timeout=60).stdout.split()
    names = {Path(p).name for p in listing}
    for path in ("usr/bin/buildah", "bin/hk-buildah", "etc/containers/policy.json", "etc/containers/storage.conf",
                 "etc/containers/registries.conf", "etc/containers/containers.conf"):
        assert f"squashfs-root/{path}" in listing, path
    for lib in BUILDAH_LIBS:
        assert lib in names, lib
    assert not {"runc", "crun"} & names  # chroot isolation: no OCI runtime shipped
    assert not any("/usr/share/doc/" in p for p in listing)
    assert "driver = \"vfs\"" in (tree / "etc" / "containers" / "storage.conf").read_text()
    assert (tree / "bin" / "hk-buildah").stat().st_mode & 0o111 == 0o111


def _snap_env(tree: Path, home: Path) -> dict[str, str]:
    """What the snap's apps get (classic: the host's PATH, without /usr/sbin where runc lives here)."""
    return {"SNAP": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def _sh_rootfs(dest: Path) -> Path:
    """/bin/sh and its libraries from this host: the smallest thing a RUN step can execute."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(Path("/bin/sh").resolve(), dest / "bin" / "sh")
    ldd = subprocess.run(["ldd", str(Path("/bin/sh").resolve())], capture_output=True, text=True, check=True).stdout
    for lib in re.findall(r"(/\S+)", ldd):
        target = dest / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(lib).resolve(), target)
    return dest


@needs_snap_tools
def test_staged_buildah_runs_through_the_snaps_wrapper(built: tuple[Path, Path], tmp_path: Path) -> None:
    """bin/hk-buildah from the unsquashed snap: its buildah, its libraries, its vfs storage.conf, chroot
    isolation with no runc/crun on PATH."""
    _, tree = built
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(platform.machine())
    if triplet is None or shutil.which("ldd") is None:
        pytest.skip(f"no buildah packages staged for {platform.machine()} here")
    env = _snap_env(tree, tmp_path)
    wrapper = [str(tree / "bin" / "hk-buildah")]
    storage = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]

    version = subprocess.run([*wrapper, "--version"], env={**env, "LD_DEBUG": "libs"}, capture_output=True,
                             text=True, timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.startswith("buildah version "), version.stderr[-2000:]
    loaded = set(re.findall(r"calling init: (\S+)", version.stderr))
    for lib in BUILDAH_LIBS:  # buildah's libraries are the snap's, not the host's
        assert any(p.startswith(str(tree)) and p.endswith(lib) for p in loaded), (lib, sorted(loaded))

    def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*wrapper, *storage, *args], env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0 or not check, done.stderr
        return done

    assert buildah("from", "--name", "c1", "scratch").stdout.strip() == "c1"
    # no --storage-driver given: vfs comes from the snap's storage.conf
    assert buildah("info", "--format", "{{.store.GraphDriverName}}").stdout.strip() == "vfs"
    assert (tmp_path / "root" / "vfs-containers").is_dir()
    buildah("copy", "c1", str(_sh_rootfs(tmp_path / "rootfs")), "/")
    ran = buildah("run", "c1", "--", "/bin/sh", "-c", "echo ran in $0")
    assert ran.stdout.strip() == "ran in /bin/sh"
    assert buildah("inspect", "--format", "{{.Isolation}}", "c1").stdout.strip() == "chroot"
    # the same buildah without the wrapper's environment: the host's configuration, OCI isolation (a runtime and
    # CNI networking, neither of which the snap ships or needs), and the RUN step fails here
    bare_env = {**env, "LD_LIBRARY_PATH": f"{tree}/usr/lib/{triplet}:{tree}/lib/{triplet}"}
    del bare_env["SNAP"]
    bare = [str(tree / "usr" / "bin" / "buildah"), *storage, "--storage-driver", "vfs"]
    subprocess.run([*bare, "from", "--name", "c2", "scratch"], env=bare_env, capture_output=True, check=True,
                   timeout=120)
    isolation = subprocess.run([*bare, "inspect", "--format", "{{.Isolation}}", "c2"], env=bare_env,
                               capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    assert isolation == "oci"
    subprocess.run([*bare, "copy", "c2", str(tmp_path / "rootfs"), "/"], env=bare_env, capture_output=True,
                   check=True, timeout=120)
    failed = subprocess.run([*bare, "run", "c2", "--", "/bin/sh", "-c", "true"], env=bare_env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert failed.returncode != 0, failed.stdout
    buildah("rm", "c2")
    buildah("rm", "c1")


def _failing_apt_get(folder: Path) -> Path:
    """apt-get as it fails offline (Debian's message and exit code 100), recording that it was asked."""
    folder.mkdir()
    script = folder / "apt-get"
    script.write_text("#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/asked\"\n"
                      "echo 'E: Failed to fetch http://deb.debian.org/debian/pool/main/b/buildah/buildah.deb  "
                      "Temporary failure resolving '\\''deb.debian.org'\\''' >&2\nexit 100\n")
    script.chmod(0o755)
    return folder


def test_offline_without_cached_debs_is_a_clear_error(build_snap: ModuleType, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _failing_apt_get(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    cache = tmp_path / "debs"
    with pytest.raises(build_snap.BuildError) as err:
        build_snap.fetch_debs(cache, "amd64")
    message = str(err.value)
    assert "neither cached" in message and "buildah" in message and "libgpgme11" in message
    assert "Temporary failure resolving" in message and str(cache) in message and "--deb-cache" in message
    assert (fake / "asked").read_text().split()[0] == "download"


def test_cached_debs_need_no_network(build_snap: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _failing_apt_get(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    cache = tmp_path / "debs"
    cache.mkdir()
    for name in build_snap.BUILDAH_DEBS:  # names as apt-get download writes them (epoch as %3a)
        (cache / f"{name}_1.0-1_amd64.deb").write_bytes(b"!<arch>\n")
    (cache / "buildah_2%3a1.2-1_amd64.deb").write_bytes(b"!<arch>\n")  # a newer version of one of them
    (cache / "buildah_9.9-1_arm64.deb").write_bytes(b"!<arch>\n")  # another architecture: ignored
    got = build_snap.fetch_debs(cache, "amd64")
    assert [p.name.split("_")[0] for p in got] == list(build_snap.BUILDAH_DEBS)
    assert got[0].name == "buildah_2%3a1.2-1_amd64.deb"
    assert not (fake / "asked").exists()  # apt-get was never run
