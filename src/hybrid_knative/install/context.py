"""Moved to hybrid_knative.platform.context (components import it from there)."""

from hybrid_knative.platform.context import Context, HostFacts, RenderContext

__all__ = ["Context", "HostFacts", "RenderContext"]
