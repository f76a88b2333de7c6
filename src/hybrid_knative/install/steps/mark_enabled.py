"""Finish the marker MicroK8s's check_status reads — only after every step before succeeded.

enable wrote it as ``incomplete`` before its first change (system/marker.py explains why); this step
says ``enabled`` when the smoke service was verified, ``unverified`` with ``--no-verify``."""

from __future__ import annotations

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change
from hybrid_knative.system import marker

NAME = "mark_enabled"
TITLE = "Mark hybrid-knative enabled"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def _state(verify: bool) -> str:
    return marker.ENABLED if verify else marker.UNVERIFIED


def run(ctx: Context, objs: list[Manifest]) -> None:
    state = _state(ctx.config.verify)
    marker.write(ctx.config.effective_marker, state, ctx.render.release.line)
    if state == marker.UNVERIFIED:
        ctx.status.info("Marked enabled without a smoke test (--no-verify): `hybrid-knative status` says "
                        "\"unverified\"; `hybrid-knative doctor` checks the DNS and the ingress")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    path = rc.config.effective_marker
    return [Change("host-file", str(path),
                   f"knative {rc.release.line}\nstate {_state(rc.config.verify)}\nsince <time>\n",
                   "update" if path.exists() else "create")]
