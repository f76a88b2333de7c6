"""Host network probes (read-only)."""

from __future__ import annotations

import socket


def hostname() -> str:
    """This host's name as MicroK8s names its Node (lower-cased short host name)."""
    return socket.gethostname().split(".")[0].lower()
