"""The one adapter to container registries and OCI layouts: skopeo, through the runner. Shared by
air-gap bundles (pull into / push from an OCI layout), and later the function workflow and clone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hybrid_knative.system.runner import Runner


@dataclasses.dataclass(frozen=True)
class Skopeo:
    runner: Runner
    registries_conf: Path | None = None  # containers-registries.conf(5): mirrors per registry
    authfile: Path | None = None  # containers-auth.json(5): registry credentials (never on the command line)

    def copy(self, source: str, dest: str, *, retry_times: int = 0, src_tls_verify: bool = True,
             dest_tls_verify: bool = True, timeout: float = 3600) -> None:
        """Copy an image with every platform and its digests unchanged (``docker://``, ``oci:DIR:REF``…)."""
        argv: list[str | Path] = ["skopeo"]
        if self.registries_conf is not None:
            argv += ["--registries-conf", self.registries_conf]
        argv += ["copy", "--quiet", "--all", "--preserve-digests"]
        if self.authfile is not None:
            argv += ["--authfile", self.authfile]
        if retry_times:
            argv += ["--retry-times", str(retry_times)]
        if not src_tls_verify:
            argv.append("--src-tls-verify=false")
        if not dest_tls_verify:
            argv.append("--dest-tls-verify=false")
        self.runner.run([*argv, source, dest], timeout=timeout)
