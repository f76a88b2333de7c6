"""hybrid-knative: serverless on your own hardware (Knative on MicroK8s that works)."""

from importlib import metadata

try:
    __version__ = metadata.version("hybrid-knative")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
