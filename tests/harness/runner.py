"""A Runner for boundaries that cannot run here (systemctl without systemd): records argv, runs nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid_knative.system.runner import Result, Runner


@dataclasses.dataclass(frozen=True)
class RecordingRunner(Runner):
    calls: list[tuple[str, ...]] = dataclasses.field(default_factory=list)

    def run(self, argv: Sequence[str | Path], **kwargs: Any) -> Result:
        args = tuple(str(a) for a in argv)
        self.calls.append(args)
        return Result(args, 0, "", "")
