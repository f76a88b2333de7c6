"""Offline function builds: what `bundle create --with functions` must carry, and how builds use it.

* the templates' base images (``FROM docker.io/library/python:…``), to be imported into the cluster's
  registry under the same path (``localhost:32000/library/python:…``); ``deploy --offline`` then writes a
  registries.conf mirror (docker.io → that registry), so the Dockerfiles stay unchanged;
* a wheelhouse (``pip download`` on the connected machine) that builds see read-only at ``/wheels``, with a
  pip.conf that points pip there (``--no-index``), so ``RUN pip install -r requirements.txt`` works offline.
  Both are bind mounts of the build only: nothing of them ends up in the image.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hybrid_knative.dev.templates import INTERNAL, TEMPLATES, template_files
from hybrid_knative.errors import ConfigError
from hybrid_knative.system.runner import Runner

FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
WHEELS_IN_BUILD = "/wheels"


def base_images() -> list[str]:
    """Every image the shipped templates build FROM (fully qualified), sorted."""
    found: set[str] = set()
    for template in TEMPLATES + INTERNAL:
        for rel, node in template_files(template):
            if rel.endswith("Dockerfile") or rel.endswith(".dockerfile"):
                found.update(FROM.findall(node.read_text(encoding="utf-8")))
    return sorted(found)


def mirror_path(image: str) -> str:
    """Where a docker.io image lives in a mirror registry: docker.io/library/python:3.12 → library/python:3.12."""
    first, sep, rest = image.partition("/")
    name = rest if sep and ("." in first or ":" in first or first == "localhost") else image
    return name if "/" in name else f"library/{name}"


def build_wheelhouse(requirements: Sequence[Path], dest: Path, runner: Runner, *, python: str = "python3",
                     pip_args: Sequence[str] = ()) -> list[Path]:
    """``pip download`` every requirement file's packages (and their dependencies) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for req in requirements:
        if not req.is_file():
            raise ConfigError(f"requirements file not found: {req}")
        runner.run([python, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest),
                    "-r", str(req), *pip_args], timeout=1800)
    return sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip"))


@contextmanager
def wheelhouse_volumes(wheelhouse: Path) -> Iterator[list[str]]:
    """buildah ``--volume`` arguments: the wheelhouse at /wheels and a pip.conf that installs only from it."""
    if not wheelhouse.is_dir():
        raise ConfigError(f"wheelhouse not found: {wheelhouse}",
                          resolution="pass the folder made by `bundle create --with functions` (wheelhouse/)")
    with tempfile.TemporaryDirectory(prefix="hk-pip-") as tmp:
        conf = Path(tmp) / "pip.conf"
        conf.write_text(f"[global]\nno-index = true\nfind-links = {WHEELS_IN_BUILD}\n"
                        "disable-pip-version-check = true\n")
        conf.chmod(0o644)
        yield [f"{wheelhouse.resolve()}:{WHEELS_IN_BUILD}:ro", f"{conf}:/etc/pip.conf:ro"]
