"""Shared fixtures. The upstream files must be vendored (`make test` does it first)."""

from __future__ import annotations

import os
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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true) nothing the machine can run may be skipped: a skip there fails the run, naming it.
    (.ci/run installs every tool and wheelhouse the tests need; a skip means it did not.)"""
    if os.environ.get("CI") != "true" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in (reporter.stats.get("skipped", []) if reporter is not None else [])
               if getattr(r, "when", "call") != "teardown"]
    if skipped:
        lines = "\n".join(f"  {r.nodeid}: {r.longrepr[2] if isinstance(r.longrepr, tuple) else r.longrepr}"
                          for r in skipped)
        print(f"\nCI=true: {len(skipped)} test(s) were skipped; in CI every test must run:\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
