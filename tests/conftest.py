"""Shared fixtures. The upstream files must be vendored (`make test` does it first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.catalog import load_catalog
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR

REPO = Path(__file__).resolve().parent.parent
SHARED_UPSTREAM = REPO.parent / "shared" / "upstream"


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [f.path for f in load_catalog().all_files() if not (PACKAGE_VENDOR_DIR / f.path).is_file()]
    if missing:
        raise pytest.UsageError(
            f"{len(missing)} upstream files are not vendored (e.g. {missing[0]}): run `make vendor` "
            "(offline: `make vendor MIRROR=../shared/upstream`) or simply `make test`"
        )


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
