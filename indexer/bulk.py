"""Bulk ingest: pool scheduling for the ingest loop (``ingest.py``); N worker processes embed (``workers.py``).

Files are settled by the same ``IngestLoop`` as the one-process path, so its guarantees carry over unchanged: one
status per file and a bad file never stops the run; a document becomes visible only when its manifest record is
written, so a killed run resumes without duplicates; re-ingesting the same bytes changes nothing; an older version
is replaced only after the new one is complete.  Only where the vectors come from differs: as soon as a file is
prepared, its chunk batches go to the workers, and the main process prepares the next files while they embed,
keeping about ``QUEUED_PER_WORKER`` batches per worker queued; the loop then writes the oldest file batch by
batch as its vectors come back.

The store is only ever touched by the main process.  A worker that dies breaks the whole pool, so which file killed
it is not known: the pool is restarted and the file being written is tried again with the workers to itself; only
if a worker dies again then does that file fail (nothing of it becomes visible).  After ``MAX_RESTARTS``, or if the
pool cannot be restarted, the remaining files are embedded in this process.

The feed hands its pool back when the loop closes it (``release``): ``pool_feed`` (the CLI's ``--workers N``) closes
it, ``background.py`` keeps it warm for the serving process's next job.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from .files import Source
from .ingest import Entry, IngestLoop
from .workers import EmbedPool, WorkerSpec, WorkersUnavailable

log = logging.getLogger(__name__)
MAX_RESTARTS = 5
QUEUED_PER_WORKER = 2


@dataclass
class _PoolEntry(Entry):
    futures: list[Future] = field(default_factory=list)
    alone: bool = False  # sent again on its own after a worker died

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()
        self.futures = []

    def vectors(self):
        if not self.futures:  # nothing was sent: the loop embeds in-process
            return None
        futures = self.futures

        def vectors(i: int, texts: Sequence[str]) -> np.ndarray:
            return futures[i].result()  # (b, D)

        return vectors


def _close(pool: EmbedPool | None) -> None:
    if pool is not None:
        pool.close()


class PoolFeed:
    """Prepares files ahead in this process and sends their batches to the pool (a ``Feed`` for the loop).
    ``release(pool)`` gets the pool back when the loop is done (None: it was given up); default: close it."""

    def __init__(self, loop: IngestLoop, sources: Sequence[Source], pool: EmbedPool | None,
                 release: Callable[[EmbedPool | None], None] = _close):
        self.loop = loop
        self.sources = sources
        self.pool = pool
        self.release = release
        self.pending: deque[_PoolEntry] = deque()
        self.next = 0  # the next source to prepare
        self.inflight: set[str] = set()  # doc_ids whose batches were sent (a same-bytes copy is not sent twice)

    # --- feeding the workers -------------------------------------------------------------------------
    def _queued(self) -> int:
        return sum(1 for e in self.pending for f in e.futures if not f.done())

    def _fill(self) -> None:
        """Prepare sources ahead until the workers have enough queued, holding at most ``budget + 1`` files (their
        bytes are in memory until written; unchanged files queue nothing); always at least one pending file."""
        budget = QUEUED_PER_WORKER * self.pool.workers if self.pool is not None else 0
        while self.next < len(self.sources):
            if self.pending and (self.pending[-1].error is not None or self._queued() >= budget
                                 or len(self.pending) > budget):
                return
            entry = _PoolEntry(self.next, self.sources[self.next])
            self.next += 1
            try:
                entry.prep = self.loop.prepare(entry.source, entry.index)
            except Exception as exc:  # a store failure (or a bug): settled in order, nothing prepared after it
                entry.error = exc
            else:
                self._submit(entry)
            self.pending.append(entry)

    def _submit(self, entry: _PoolEntry) -> None:
        prep = entry.prep
        if (self.pool is None or prep is None or prep.status is not None or prep.existing is not None
                or prep.doc_id in self.inflight):
            return  # nothing to embed, or the same bytes are already on their way
        while self.pool is not None:
            try:
                entry.futures = [self.pool.submit([c.text for c in batch], self.loop.batch_size)
                                 for batch in prep.batches]
                break
            except BrokenProcessPool:  # a worker died since the last file: restart (bounded), then send again
                entry.cancel()
                self._restart()
        if entry.futures:
            self.inflight.add(prep.doc_id)

    def _restart(self, resubmit: bool = True) -> None:
        """After a worker died: fresh processes (or none: embed in this process from now on).  The batches of
        pending files died with the old pool; they are sent again now, or later by ``_resubmit``."""
        if self.pool is not None:
            try:
                if self.pool.restarts >= MAX_RESTARTS:
                    raise WorkersUnavailable(f"workers died {self.pool.restarts + 1} times")
                self.pool.restart()
            except WorkersUnavailable as exc:
                log.warning("embedding the remaining files in this process: %s", exc)
                self.pool.close()
                self.pool = None
        self.inflight = set()
        for e in self.pending:
            e.cancel()
        if resubmit:
            self._resubmit()

    def _resubmit(self) -> None:
        for e in self.pending:
            if not e.futures:
                self._submit(e)

    # --- the Feed the loop calls ---------------------------------------------------------------------
    def take(self, index: int) -> _PoolEntry:
        self._fill()
        if not self.pending:
            raise RuntimeError(f"no file {index} to settle")  # the loop takes each index once, in order
        entry = self.pending.popleft()
        assert entry.index == index, (entry.index, index)
        return entry

    def recover(self, entry: _PoolEntry, exc: Exception) -> _PoolEntry | str | None:
        if not isinstance(exc, BrokenProcessPool):
            return None
        if entry.alone:  # it had the workers to itself: this file is what kills them
            self._restart()
            return f"an embedding worker died on this file ({exc}); nothing of it is visible"
        # a worker died, on this file's batches or on a later file's: try this one again, alone
        self._restart(resubmit=False)
        entry.cancel()
        entry.alone = True
        self._submit(entry)
        return entry

    def settled(self, entry: _PoolEntry) -> None:
        if entry.prep is not None and entry.futures:
            self.inflight.discard(entry.prep.doc_id)
        if entry.alone:
            self._resubmit()

    def close(self) -> None:
        for e in self.pending:
            e.cancel()
        pool, self.pool = self.pool, None
        self.release(pool)


def pool_feed(loop: IngestLoop, sources: Sequence[Source], workers: int) -> PoolFeed:
    """A feed with ``workers`` fresh embedding processes (closed with the feed).  Raises ``WorkersUnavailable``
    when they cannot start at all (nothing was touched then)."""
    return PoolFeed(loop, sources, EmbedPool(WorkerSpec.of(loop.writer.encoders.embedder, workers), workers))
