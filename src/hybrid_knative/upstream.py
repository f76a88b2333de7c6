"""Finding upstream release files: vendored copies, verified by sha256 every time they are opened."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from hybrid_knative.catalog import UpstreamFile
from hybrid_knative.errors import IntegrityError, PermanentError, TemporaryError

PACKAGE_VENDOR_DIR = Path(__file__).parent / "_vendor"

Fetcher = Callable[[str, Path], None]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: UpstreamFile) -> None:
    actual = sha256_file(path)
    if actual != expected.sha256:
        raise IntegrityError(
            f"checksum mismatch for {expected.path}",
            details=f"file: {path}\nexpected sha256 {expected.sha256}\nactual   sha256 {actual}",
            resolution="the file is corrupt or was modified; re-run `make vendor` (or re-download the bundle)",
        )


def http_fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (requests, bounded timeouts)."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=(10, 60)) as resp:
            resp.raise_for_status()
            with dest.open("wb") as fh:
                for chunk in resp.iter_content(1 << 16):
                    fh.write(chunk)
    except requests.RequestException as exc:
        raise TemporaryError(f"download failed: {url}", details=str(exc),
                             resolution="check network access, or use a vendored copy / an air-gap bundle") from exc


def install_file(src_fetch: Callable[[Path], None], expected: UpstreamFile, dest: Path) -> None:
    """Write a verified file at dest atomically: fetch to a temp file, verify, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src_fetch(tmp)
        verify(tmp, expected)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclasses.dataclass
class UpstreamStore:
    """Looks files up in ``search_dirs`` in order, then (online only) downloads into ``cache_dir``.

    Every returned file has been checked against its pinned sha256 in this process.
    """

    search_dirs: Sequence[Path] = (PACKAGE_VENDOR_DIR,)
    cache_dir: Path | None = None
    fetch: Fetcher | None = None  # None = offline
    _verified: dict[str, Path] = dataclasses.field(default_factory=dict)
    opened: list[UpstreamFile] = dataclasses.field(default_factory=list)  # every path() asked for (benchmarks)

    def path(self, f: UpstreamFile) -> Path:
        self.opened.append(f)
        if f.path in self._verified:
            return self._verified[f.path]
        for folder in self.search_dirs:
            candidate = folder / f.path
            if candidate.is_file():
                verify(candidate, f)
                self._verified[f.path] = candidate
                return candidate
        if self.cache_dir is not None:
            cached = self.cache_dir / f.path
            if cached.is_file():
                verify(cached, f)
                self._verified[f.path] = cached
                return cached
            if self.fetch is not None:
                fetch = self.fetch
                install_file(lambda tmp: fetch(f.url, tmp), f, cached)
                self._verified[f.path] = cached
                return cached
        where = ", ".join(str(d) for d in self.search_dirs) or "nowhere"
        raise PermanentError(
            f"upstream file {f.path} is not available",
            details=f"looked in: {where}",
            resolution="run `make vendor` (or `make vendor MIRROR=DIR` offline), or pass --bundle",
        )

    def read_text(self, f: UpstreamFile) -> str:
        return self.path(f).read_text(encoding="utf-8")


def vendor_files(files: Sequence[UpstreamFile], dest_dir: Path, *, mirror: Path | None,
                 fetch: Fetcher = http_fetch, report: Callable[[str], None] = print) -> None:
    """Fill ``dest_dir`` with verified copies (from ``mirror`` when given, else downloaded)."""
    for f in files:
        dest = dest_dir / f.path
        if dest.is_file() and sha256_file(dest) == f.sha256:
            continue
        if mirror is not None:
            source = mirror / f.path
            if not source.is_file():
                raise PermanentError(f"{f.path} is missing from the mirror {mirror}")
            install_file(lambda tmp, s=source: shutil.copyfile(s, tmp), f, dest)  # type: ignore[misc]
        else:
            install_file(lambda tmp, u=f.url: fetch(u, tmp), f, dest)  # type: ignore[misc]
        report(f"✓ {f.path}")
