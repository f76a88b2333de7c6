"""Write the marker that MicroK8s's check_status reads — only after every step before succeeded."""

from __future__ import annotations

import datetime

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change
from hybrid_knative.system.files import atomic_write

NAME = "mark_enabled"
TITLE = "Mark hybrid-knative enabled"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def run(ctx: Context, objs: list[Manifest]) -> None:
    stamp = datetime.datetime.now(tz=datetime.timezone.utc).isoformat(timespec="seconds")
    atomic_write(ctx.config.effective_marker, f"knative {ctx.render.release.line}\nenabled {stamp}\n")


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    path = rc.config.effective_marker
    return [Change("host-file", str(path), f"knative {rc.release.line}\nenabled <time>\n",
                   "update" if path.exists() else "create")]
