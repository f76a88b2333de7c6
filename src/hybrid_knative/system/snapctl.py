"""`snapctl`, the tool snapd gives a snap's hooks and apps: configuration and services (via the Runner).

Only meaningful inside our own snap (hooks, daemons); ``SNAPCTL`` names another binary for tests.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hybrid_knative.errors import CommandError, PermanentError
from hybrid_knative.system.runner import Runner


@dataclasses.dataclass(frozen=True)
class Snapctl:
    runner: Runner = dataclasses.field(default_factory=Runner)
    binary: str = "snapctl"
    snap_name: str = "hybrid-knative"

    def _run(self, *args: str) -> str:
        return self.runner.run([self.binary, *args], timeout=60).stdout

    def get_document(self, key: str) -> Any:
        """The value under ``key`` (a string, number, bool, list or nested dict), or None when unset."""
        try:
            out = self._run("get", "-d", key)
        except CommandError as exc:
            if "configuration option" in (exc.stderr + exc.stdout):  # e.g. `has no "x" configuration option`
                return None
            raise
        try:
            doc = json.loads(out or "{}")
        except ValueError:
            raise PermanentError(f"snapctl printed something that is not JSON for `get -d {key}`",
                                 details=out[:500]) from None
        if not isinstance(doc, dict):
            raise PermanentError(f"snapctl printed a {type(doc).__name__}, not an object, for `get -d {key}`")
        return doc.get(key)

    def service(self, app: str) -> str:
        return f"{self.snap_name}.{app}"

    def start(self, app: str, *, enable: bool) -> None:
        self._run("start", *(["--enable"] if enable else []), self.service(app))

    def stop(self, app: str, *, disable: bool) -> None:
        self._run("stop", *(["--disable"] if disable else []), self.service(app))
