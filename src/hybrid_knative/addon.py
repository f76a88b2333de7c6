"""What `enable`, `disable`, `status` and `plan` do — the one code path behind the CLI and the
MicroK8s addon shims (which hand their arguments to the CLI). Thin: the use cases live in install/."""

from __future__ import annotations

from hybrid_knative.diagnose.status import ComponentHealth, Health, dns_checks, health
from hybrid_knative.install.dryrun import PLAN_MARKER, render, write_plan
from hybrid_knative.install.preflight import host_facts, render_context
from hybrid_knative.install.run import Outcome, connect, disable, enable

__all__ = ["PLAN_MARKER", "ComponentHealth", "Health", "Outcome", "connect", "disable", "dns_checks", "enable",
           "health", "host_facts", "render", "render_context", "write_plan"]
