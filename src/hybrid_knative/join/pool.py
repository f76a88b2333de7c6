"""A small pool of pre-created MicroK8s join tokens, so that an enrolment never waits on a process.

Each token is what the hub handed out before, one per device: ``microk8s add-node --token <random>
--token-ttl -1 --format json``. MicroK8s's cluster agent treats a token without expiry as **single
use** (it removes the line once a node joins with it) and a token with a positive ``--token-ttl`` as
reusable until it expires — so a pool token is made with ``-1`` and the hub itself bounds its life:

* a pooled token older than ``ttl - margin`` seconds is never handed out (it is discarded), so a
  device always gets at least ``margin`` seconds to run ``microk8s join``;
* every token the hub created is removed from MicroK8s's token file ``ttl`` seconds after it was
  created if no node used it (:meth:`Hub.retire_join_tokens`), and at once when it is discarded or
  the hub stops;
* a token leaves the pool exactly once (:meth:`JoinTokenPool.take` pops it under a lock); one that
  was never sent to anybody may go back (:meth:`JoinTokenPool.give_back`).

Where the secrets live: **in memory only**. A restarted hub cannot hand out an earlier process's
tokens (it never knew them); what survives a restart or a crash is a ledger of their SHA-256 and
creation time (``join-tokens.jsonl``, 0600, no secret), which lets the next hub retire them from
MicroK8s's token file within ``ttl`` seconds. The ledger line is written before ``add-node`` runs,
so no token can exist in MicroK8s's file without the hub knowing its hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hybrid_knative.system.files import atomic_write

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# runs `microk8s add-node` for the given token: the join URLs, or None when it failed (already logged)
Create = Callable[[str], "list[str] | None"]


@dataclasses.dataclass(frozen=True)
class JoinToken:
    """One MicroK8s join token; its secret and URLs never appear in repr() or logs."""

    secret: str = dataclasses.field(repr=False)
    urls: tuple[str, ...] = dataclasses.field(repr=False)
    sha256: str
    created: float  # hub clock


def token_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class SharedLock:
    """Many holders in ``shared()`` at once, or one in ``exclusive()``: creating tokens (MicroK8s appends
    to its token file) never overlaps rewriting that file to retire tokens (which would drop the line)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new shared holders wait from here on
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Ledger:
    """The hashes of the join tokens a hub created (JSON lines, 0600, appended without fsync: it must
    survive the hub process, not a power cut — a token is single-use and short-lived either way)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, sha256: str, created: float, owner: str) -> None:
        line = json.dumps({"sha256": sha256, "created": round(created, 3), "owner": owner}, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                entry = json.loads(line)
                out.append({"sha256": str(entry["sha256"]), "created": float(entry["created"]),
                            "owner": str(entry.get("owner", ""))})
        return out  # a torn last line (a crash mid-append) is skipped: its token was never created

    def rewrite(self, entries: list[dict[str, Any]]) -> None:
        """Only under the exclusive lock (no append may run meanwhile)."""
        atomic_write(self.path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), mode=0o600)


class JoinTokenPool:
    """Pre-created join tokens for a burst of enrolments; see the module docstring for the rules."""

    def __init__(self, *, size: int, ttl: float, margin: float, create: Create, ledger: Ledger,
                 lock: SharedLock, clock: Clock = time.time, max_creating: int = 8,
                 on_discard: Callable[[], None] | None = None) -> None:
        if size < 0 or not 0 < margin < ttl:
            raise ValueError("pool size must be ≥ 0 and 0 < margin < ttl")
        self.size, self.ttl, self.margin = size, ttl, margin
        self._create, self.ledger, self.lock, self.clock = create, ledger, lock, clock
        self.owner = secrets.token_hex(8)  # this process's tokens in the ledger
        self._ready: deque[JoinToken] = deque()  # oldest first
        self._creating: set[str] = set()  # hashes being created (in the ledger, maybe in MicroK8s's file)
        self._taken: set[str] = set()  # handed to a request that has not recorded it yet
        self._dropped: set[str] = set()  # discarded: to be retired from MicroK8s's file
        self._mutex = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, max_creating))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_discard = on_discard
        self._filling = 0  # creations under way for the pool
        self._fallbacks = 0  # requests creating their own token (the pool was empty)
        self.fill_parallel = max(1, max_creating // 2)
        self.failures = 0  # add-node failures in a row (the refiller backs off)
        self.created = 0  # tokens created in this process (figures for tests and benchmarks)

    # --- what requests use ----------------------------------------------------------------------

    def take(self) -> JoinToken | None:
        """A fresh token that no request has had, or None when the pool is empty."""
        now = self.clock()
        with self._mutex:
            self._expire(now)
            token = self._ready.popleft() if self._ready else None
            if token is not None:
                self._taken.add(token.sha256)
        self._wake.set()
        return token

    def create_now(self) -> JoinToken | None:
        """The fallback when the pool is empty: create one for this request (bounded concurrency). While
        any request waits on one, the refill pauses: every add-node slot serves a waiting device first."""
        with self._mutex:
            self._fallbacks += 1
        try:
            with self._slots:
                return self._make()
        finally:
            with self._mutex:
                self._fallbacks -= 1
                resume = self._fallbacks == 0
            if resume:
                self._wake.set()

    def settled(self, token: JoinToken) -> None:
        """The request recorded the token with its enrolment (it is no longer the pool's business)."""
        with self._mutex:
            self._taken.discard(token.sha256)

    def give_back(self, token: JoinToken) -> None:
        """A token that was never sent to anybody (the request was refused after taking it): back into the
        pool, or — too old, or the pool refilled meanwhile — dropped (the hub retires it)."""
        with self._mutex:
            self._taken.discard(token.sha256)
            fresh = self.clock() - token.created < self.ttl - self.margin
            if fresh and not self._stop.is_set() and len(self._ready) < self.size:
                self._ready.append(token)  # younger than some, but still fresh enough: order barely matters
            else:
                self._dropped.add(token.sha256)
        self._wake.set()

    # --- what the hub's retire pass uses ---------------------------------------------------------

    def live(self) -> set[str]:
        """Hashes of this process's tokens that must stay in MicroK8s's file (ready, being made, taken)."""
        with self._mutex:
            return {t.sha256 for t in self._ready} | self._creating | self._taken

    def forget_dropped(self, retired: set[str]) -> None:
        with self._mutex:
            self._dropped -= retired

    def ready(self) -> int:
        with self._mutex:
            return len(self._ready)

    # --- background refill -----------------------------------------------------------------------

    def start(self) -> None:
        if self.size == 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="join-token-pool", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Until the pool is full (True), an add-node failed, or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._mutex:
                if len(self._ready) >= self.size:
                    return True
            if self.failures or self._stop.is_set():
                return False
            time.sleep(0.02)
        return False

    def close(self) -> list[str]:
        """Stop refilling; the tokens still in the pool are dropped (the hub retires them)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._mutex:
            self._dropped.update(t.sha256 for t in self._ready)
            self._ready.clear()
            return sorted(self._dropped)

    def fill(self) -> int:
        """Create tokens until the pool is full (or add-node fails), a few at a time; returns how many
        were added."""
        added: list[int] = []

        def worker() -> None:
            while not self._stop.is_set():
                with self._mutex:
                    self._expire(self.clock())
                    if self.size - len(self._ready) - self._filling <= 0 or self._fallbacks:
                        return  # full, or devices are waiting on their own add-node: they go first
                    self._filling += 1
                token: JoinToken | None = None
                try:
                    with self._slots:
                        token = self._make()
                finally:
                    with self._mutex:
                        self._filling -= 1
                        if token is not None:
                            self._taken.discard(token.sha256)
                            if self._stop.is_set():
                                self._dropped.add(token.sha256)
                            else:
                                self._ready.append(token)
                                added.append(1)
                if token is None:
                    return

        with self._mutex:
            missing = self.size - len(self._ready) - self._filling
        workers = [threading.Thread(target=worker, name="join-token-fill", daemon=True)
                   for _ in range(max(0, min(missing, self.fill_parallel)))]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        return len(added)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.fill()
                with self._mutex:
                    self._expire(self.clock())
                    dropped = bool(self._dropped)
                if dropped and self._on_discard is not None:
                    self._on_discard()
            except Exception:  # the refiller must never die: requests would all fall back
                log.exception("the join token pool could not refill")
            backoff = min(30.0, 0.5 * 2 ** min(self.failures, 6)) if self.failures else None
            wait = backoff if backoff is not None else max(0.05, min(30.0, self.margin / 4))
            self._wake.wait(wait)
            self._wake.clear()

    # --- internals -----------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Drop tokens too old to hand out (the caller holds the mutex)."""
        while self._ready and now - self._ready[0].created >= self.ttl - self.margin:
            self._dropped.add(self._ready.popleft().sha256)
        stale = [t for t in self._ready if now - t.created >= self.ttl - self.margin]  # a given-back one
        for token in stale:
            self._ready.remove(token)
            self._dropped.add(token.sha256)

    def _make(self) -> JoinToken | None:
        """Create one token; it comes back marked taken (live), for the caller to place or use."""
        secret = secrets.token_hex(16)  # ≥ 32 characters, as add-node requires
        digest = token_sha256(secret)
        created = self.clock()
        urls: list[str] | None = None
        with self.lock.shared():
            with self._mutex:
                self._creating.add(digest)
            try:
                self.ledger.add(digest, created, self.owner)  # before MicroK8s knows it: never an orphan
                urls = self._create(secret)
            except OSError as exc:
                log.error("cannot record a join token in %s: %s", self.ledger.path, exc.strerror)
            finally:
                with self._mutex:
                    self._creating.discard(digest)
                    if urls is None:
                        self._dropped.add(digest)  # add-node may have written it before failing
                    else:
                        self._taken.add(digest)
        if urls is None:
            self.failures += 1
            return None
        self.failures = 0
        self.created += 1
        return JoinToken(secret, tuple(urls), digest, created)
