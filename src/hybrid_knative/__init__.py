"""hybrid-knative: serverless on your own hardware (Knative on MicroK8s that works)."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """`__version__` from the installed distribution, looked up on first use (importlib.metadata is slow to
    import, and `hybrid-knative --help` does not need it)."""
    if name != "__version__":
        raise AttributeError(f"module 'hybrid_knative' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("hybrid-knative")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        version = "0.0.0+source"
    globals()["__version__"] = version
    return version
