"""Finish the marker MicroK8s's check_status reads — only after every step before succeeded.

enable wrote it as ``incomplete`` before its first change (system/marker.py explains why); this step
says ``enabled`` when the smoke service was verified, ``unverified`` with ``--no-verify``."""

from __future__ import annotations

from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.system import marker

NAME = "mark_enabled"
TITLE = "Mark hybrid-knative enabled"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def run(ctx: Context, objs: list[Manifest]) -> None:
    state = marker.ENABLED if ctx.config.verify else marker.UNVERIFIED
    marker.write(ctx.config.effective_marker, state, ctx.render.release.line)
    if state == marker.UNVERIFIED:
        ctx.status.info("Marked enabled without a smoke test (--no-verify): `hybrid-knative status` says "
                        "\"unverified\"; `hybrid-knative doctor` checks the DNS and the ingress")
