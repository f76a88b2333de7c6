"""Uniform progress: one ✓/✗ line per step, a spinner only on a TTY, -q / -v.

Progress goes to stderr; results (URLs, paths, tables) go to stdout.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Status:
    def __init__(self, *, stream: TextIO | None = None, verbosity: int = 0, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity  # -1 quiet, 0 normal, 1+ verbose
        self.tty = self.stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._current: str | None = None
        self._note = ""
        self._skipped: str | None = None

    def _write(self, text: str) -> None:
        with self._lock:
            if self.tty and self._current is not None:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def info(self, message: str) -> None:
        if self.verbosity >= 0:
            self._write(message)

    def detail(self, message: str) -> None:
        """Shown with -v only."""
        if self.verbosity >= 1:
            self._write(f"  {message}")

    def warn(self, message: str) -> None:
        self._write(f"! {message}")

    def note(self, message: str) -> None:
        """Transient sub-progress of the current step (spinner line on a TTY, -v line otherwise)."""
        self._note = message
        if not self.tty:
            self.detail(message)

    def skip(self, reason: str) -> None:
        """The current step did nothing on purpose: its line says so (`– title (reason)`) instead of ✓."""
        self._skipped = reason

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._current = title
        self._note = ""
        self._skipped = None
        stop = threading.Event()
        spinner: threading.Thread | None = None
        if self.tty and self.verbosity >= 0:
            spinner = threading.Thread(target=self._spin, args=(title, stop), daemon=True)
            spinner.start()
        try:
            yield
        except BaseException:
            stop.set()
            if spinner is not None:
                spinner.join(timeout=1)
            self._write(f"✗ {title}")
            self._current = None
            raise
        stop.set()
        if spinner is not None:
            spinner.join(timeout=1)
        if self.verbosity >= 0:
            self._write(f"– {title} ({self._skipped})" if self._skipped else f"✓ {title}")
        self._current = None
        self._skipped = None

    def branch(self, label: str) -> BranchStatus:
        """The progress of work running beside other work (enable's overlapped installs): every line goes
        through this status, marked ``[label]``; no spinner of its own (this one's shows its latest note)."""
        return BranchStatus(self, label)

    def _spin(self, title: str, stop: threading.Event) -> None:
        for frame in itertools.cycle(FRAMES):
            if stop.wait(0.1):
                return
            with self._lock:
                note = f" — {self._note}" if self._note else ""
                self.stream.write(f"\r\033[K{frame} {title}{note}"[:200])
                self.stream.flush()


class BranchStatus(Status):
    """See Status.branch."""

    def __init__(self, parent: Status, label: str) -> None:
        super().__init__(stream=parent.stream, verbosity=parent.verbosity, tty=False)
        self.parent = parent
        self.label = label  # may change between steps (the component whose step runs)

    def _write(self, text: str) -> None:
        mark, _, rest = text.partition(" ")
        if mark in ("✓", "✗", "!", "–"):
            self.parent._write(f"{mark} [{self.label}] {rest}")
        else:
            self.parent._write(f"  [{self.label}] {text.strip()}")

    def note(self, message: str) -> None:
        self.parent._note = f"[{self.label}] {message}"
        if not self.parent.tty:
            self.detail(message)
