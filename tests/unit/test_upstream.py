"""Upstream files: lookup order, sha256 verification, downloads through a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_knative.catalog import UpstreamFile
from hybrid_knative.errors import IntegrityError, PermanentError, TemporaryError
from hybrid_knative.upstream import UpstreamStore, http_fetch, vendor_files

CONTENT = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n"


def _file(url: str = "http://127.0.0.1:1/demo.yaml", content: bytes = CONTENT) -> UpstreamFile:
    return UpstreamFile(component="demo", version="1.0.0", name="demo.yaml", path="demo/1.0.0/demo.yaml",
                        url=url, sha256=hashlib.sha256(content).hexdigest(), size=len(content))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_search_dirs_in_order_and_verified(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        (d / "demo/1.0.0").mkdir(parents=True)
    (second / "demo/1.0.0/demo.yaml").write_bytes(CONTENT)
    store = UpstreamStore(search_dirs=(first, second))
    assert store.path(_file()) == second / "demo/1.0.0/demo.yaml"
    assert store.read_text(_file()).startswith("apiVersion")


def test_corrupt_file_is_a_hard_error(tmp_path: Path) -> None:
    (tmp_path / "demo/1.0.0").mkdir(parents=True)
    (tmp_path / "demo/1.0.0/demo.yaml").write_bytes(CONTENT + b"# tampered\n")
    with pytest.raises(IntegrityError) as err:
        UpstreamStore(search_dirs=(tmp_path,)).path(_file())
    assert "checksum mismatch for demo/1.0.0/demo.yaml" in err.value.brief
    assert _file().sha256 in (err.value.details or "")


def test_missing_offline_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="not available") as err:
        UpstreamStore(search_dirs=(tmp_path,), cache_dir=tmp_path / "cache", fetch=None).path(_file())
    assert "make vendor" in (err.value.resolution or "")


def test_download_into_cache_then_reuse(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "demo.yaml").write_bytes(CONTENT)
    f = _file(url=f"{base}/demo.yaml")
    calls: list[str] = []

    def counting_fetch(url: str, dest: Path) -> None:
        calls.append(url)
        http_fetch(url, dest)

    store = UpstreamStore(search_dirs=(), cache_dir=tmp_path / "cache", fetch=counting_fetch)
    path = store.path(f)
    assert path.read_bytes() == CONTENT
    assert calls == [f.url]
    again = UpstreamStore(search_dirs=(), cache_dir=tmp_path / "cache", fetch=counting_fetch)
    assert again.path(f) == path
    assert calls == [f.url]  # the verified cache is used


def test_download_with_wrong_content_leaves_nothing(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "demo.yaml").write_bytes(b"something else")
    store = UpstreamStore(search_dirs=(), cache_dir=tmp_path / "cache", fetch=http_fetch)
    with pytest.raises(IntegrityError):
        store.path(_file(url=f"{base}/demo.yaml"))
    assert not list((tmp_path / "cache").rglob("*.yaml"))
    assert not list((tmp_path / "cache").rglob(".partial-*"))


def test_download_404_is_reported(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(TemporaryError, match="download failed"):
        http_fetch(f"{base}/missing.yaml", tmp_path / "x")


def test_vendor_from_mirror_and_refuse_bad_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "demo/1.0.0").mkdir(parents=True)
    (mirror / "demo/1.0.0/demo.yaml").write_bytes(CONTENT)
    dest = tmp_path / "vendor"
    lines: list[str] = []
    vendor_files([_file()], dest, mirror=mirror, report=lines.append)
    assert (dest / "demo/1.0.0/demo.yaml").read_bytes() == CONTENT
    assert lines == ["✓ demo/1.0.0/demo.yaml"]
    (mirror / "demo/1.0.0/demo.yaml").write_bytes(b"tampered")
    (dest / "demo/1.0.0/demo.yaml").unlink()
    with pytest.raises(IntegrityError):
        vendor_files([_file()], dest, mirror=mirror, report=lines.append)
    assert not (dest / "demo/1.0.0/demo.yaml").exists()
