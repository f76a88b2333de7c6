"""Images between registries, by digest: copies through the one skopeo adapter (system/registry.py, the
runner), manifests read in process over the registry API (system/registry_api.py).

Registries on loopback addresses (MicroK8s's ``localhost:32000``, test registries on 127.0.0.1) speak
plain HTTP; every other registry is reached over verified TLS. Credentials come from an authfile
(``--authfile``, the containers-auth.json format that ``podman login``/``skopeo login`` write) and are
never put on a command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from hybrid_knative.errors import CommandError, PermanentError, TemporaryError
from hybrid_knative.system.registry import Skopeo
from hybrid_knative.system.registry_api import RegistryApi, load_auths
from hybrid_knative.system.runner import Runner

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def registry_host(reference: str) -> str:
    """``host[:port]`` of an image reference (``docker.io`` when it names none)."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of ``host/path[:tag][@sha256:…]``."""
    name, _, digest = reference.partition("@")
    head, _, last = name.rpartition("/")
    tag = None
    if ":" in last:
        last, tag = last.split(":", 1)
    repo = f"{head}/{last}" if head else last
    return repo, tag, digest or None


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name in LOOPBACK_HOSTS


@dataclasses.dataclass
class SkopeoCounters:
    copies: int = 0
    inspections: int = 0


@dataclasses.dataclass
class ImageRegistry:
    runner: Runner
    authfile: Path | None = None  # credentials for the destination (and sources that need them)
    timeout: float = 1800.0
    counters: SkopeoCounters = dataclasses.field(default_factory=SkopeoCounters)
    api: RegistryApi = dataclasses.field(default_factory=RegistryApi)

    def __post_init__(self) -> None:
        if self.authfile is not None and not self.api.auths:
            self.api.auths = load_auths(self.authfile)

    def copy(self, source: str, dest: str) -> None:
        """Copy every platform of ``source`` to ``dest``, keeping the digests (no format conversion)."""
        self.counters.copies += 1
        cli = Skopeo(self.runner, authfile=self.authfile)
        try:
            cli.copy(f"docker://{source}", f"docker://{dest}", src_tls_verify=not is_loopback(registry_host(source)),
                     dest_tls_verify=not is_loopback(registry_host(dest)), timeout=self.timeout)
        except CommandError as exc:
            raise _explain(exc, f"cannot copy {source} to {dest}") from None

    def manifest(self, reference: str) -> bytes | None:
        """The raw manifest (or index) of ``reference``; None when the registry does not have it.

        Read over the registry's HTTP API in process (a skopeo process per check would dominate a sync)."""
        self.counters.inspections += 1
        repo, tag, digest = split_reference(reference)
        host = registry_host(repo + "/x") if "/" in repo else "docker.io"
        path = repo[len(host) + 1:] if repo.startswith(host + "/") else repo
        if host == "docker.io" and "/" not in path:
            path = f"library/{path}"
        return self.api.manifest(host, path, digest or tag or "latest")

    def digest_of(self, reference: str) -> str | None:
        raw = self.manifest(reference)
        return None if raw is None else "sha256:" + hashlib.sha256(raw).hexdigest()

    def blob_sizes(self, reference: str) -> dict[str, int]:
        """digest → size of every blob (layers, configs) the image needs, over all its platforms."""
        raw = self.manifest(reference)
        if raw is None:
            return {}
        doc: dict[str, Any] = json.loads(raw)
        repo = split_reference(reference)[0]
        sizes: dict[str, int] = {}
        children = doc.get("manifests")
        docs = [doc] if children is None else []
        for child in children or []:
            sub = self.manifest(f"{repo}@{child['digest']}")
            if sub is not None:
                docs.append(json.loads(sub))
        for one in docs:
            for blob in [one.get("config") or {}, *(one.get("layers") or [])]:
                if blob.get("digest"):
                    sizes[str(blob["digest"])] = int(blob.get("size") or 0)
        return sizes


def _explain(exc: CommandError, what: str) -> PermanentError | TemporaryError:
    text = (exc.stderr or exc.stdout).lower()
    if "unauthorized" in text or "authentication required" in text or "denied" in text:
        return PermanentError(f"{what}: the registry refused the credentials", details=exc.details,
                              resolution="log in to the registry into an authfile (`skopeo login --authfile "
                              "auth.json HOST`, or the cloud's helper: see docs/hybrid-cloud.md) and pass "
                              "--registry-authfile auth.json")
    if "connection refused" in text or "no such host" in text or "i/o timeout" in text or "dial tcp" in text:
        return TemporaryError(f"{what}: the registry is unreachable", details=exc.details,
                              resolution="check the registry address and that this machine can reach it")
    return PermanentError(what, details=exc.details, resolution="see skopeo's message above")
