"""The file MicroK8s's ``check_status`` looks for (``$SNAP_DATA/var/lock/hybrid-knative.enabled``).

MicroK8s's dispatcher (scripts/wrappers/common/utils.py ``unprotected_xable``) runs our ``enable``
script only when the file is ABSENT and our ``disable`` script only when it EXISTS; it prints "Addon …
is already enabled/disabled" otherwise. So the file must exist from the first change on — else a
half-way enable could not be taken back with ``microk8s disable`` — and it says how far we got:

- ``incomplete``: enable (or disable) started changing the cluster and has not finished; MicroK8s
  shows the addon enabled, ``hybrid-knative status`` shows "incomplete";
- ``unverified``: enable finished with ``--no-verify`` (no smoke service proved it works);
- ``enabled``: enable finished and the smoke service answered from the host and from a pod.

A marker from before these states (``knative X`` + ``enabled <time>``) reads as ``enabled``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from hybrid_knative.system.files import atomic_write

INCOMPLETE = "incomplete"
UNVERIFIED = "unverified"
ENABLED = "enabled"
STATES = (INCOMPLETE, UNVERIFIED, ENABLED)

REPAIR = ("to finish or repair it: `sudo hybrid-knative repair` (MicroK8s itself skips `microk8s enable "
          "hybrid-knative` while the addon counts as enabled); to take it all back: "
          "`sudo microk8s disable hybrid-knative`")


def write(path: Path, state: str, release: str | None) -> None:
    if state not in STATES:
        raise ValueError(f"unknown marker state {state!r}")
    stamp = datetime.datetime.now(tz=datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write(path, f"knative {release or '-'}\nstate {state}\nsince {stamp}\n")


def read(path: Path) -> str | None:
    """The marker's state; None when there is no marker (MicroK8s: disabled)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "state":
            return words[1] if words[1] in STATES else INCOMPLETE
        if words[:1] == ["enabled"]:  # the format before states: written only at the very end
            return ENABLED
    return INCOMPLETE  # present (MicroK8s says enabled) but unreadable: treat as not finished


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
