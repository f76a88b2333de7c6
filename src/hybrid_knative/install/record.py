"""Moved to hybrid_knative.platform.record."""

from hybrid_knative.platform.record import Entry, Record, Undo, record_path

__all__ = ["Entry", "Record", "Undo", "record_path"]
