"""Bulk ingest: the main process reads, extracts, chunks and writes; N worker processes embed (``workers.py``).

Files are settled in the order given, through the same ``prepare`` / ``commit`` steps as the one-process path
(``Pipeline.ingest(..., workers=1)``), so its guarantees carry over unchanged: one status per file and a bad file
never stops the run; a document becomes visible only when its manifest record is written, so a killed run resumes
without duplicates; re-ingesting the same bytes changes nothing; an older version is replaced only after the new
one is complete.  Only where the vectors come from differs.  As soon as a file is chunked, its chunk batches go to
the workers, and the main process prepares the next files while they embed, keeping about ``QUEUED_PER_WORKER``
batches per worker queued; the oldest file is then written batch by batch as its vectors come back.

The store is only ever touched by the main process.  A worker that dies breaks the whole pool, so which file killed
it is not known: the pool is restarted and the file being written is tried again with the workers to itself; only
if a worker dies again then does that file fail (nothing of it becomes visible).  After ``MAX_RESTARTS``, or if the
pool cannot be restarted, the remaining files are embedded in this process.
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
from .ingest import BatchVectors, DocumentWriter, Prepared, StoreFailure, batches, commit, prepare
from .results import FileStatus, ProgressEvent
from .workers import EmbedPool, WorkerSpec, WorkersUnavailable

log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
MAX_RESTARTS = 5
QUEUED_PER_WORKER = 2


@dataclass
class _Entry:
    """One source on its way: prepared (or the error ``prepare`` raised), and its batches with the workers."""

    index: int
    source: Source
    prep: Prepared | None = None
    error: Exception | None = None  # re-raised when this file's turn comes, so errors stay in file order
    futures: list[Future] = field(default_factory=list)
    alone: bool = False  # sent again on its own after a worker died

    def cancel(self) -> None:
        for f in self.futures:
            f.cancel()

    def embed(self) -> BatchVectors | None:
        """Vectors of batch ``i`` from the workers (None: nothing was sent; the writer embeds in-process)."""
        if not self.futures:
            return None
        futures = self.futures

        def vectors(i: int, texts: Sequence[str]) -> np.ndarray:
            out = futures[i].result()
            if out.shape[0] != len(texts):
                raise RuntimeError(f"worker returned {out.shape[0]} vectors for {len(texts)} chunks")
            return out

        return vectors


class BulkIngest:
    def __init__(self, writer: DocumentWriter, sources: Sequence[Source], pool: EmbedPool | None, keep: str,
                 max_bytes: int, notify: Progress):
        self.writer = writer
        self.sources = sources
        self.pool = pool
        self.keep = keep
        self.max_bytes = max_bytes
        self.notify = notify
        self.pending: deque[_Entry] = deque()
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
            entry = _Entry(self.next, self.sources[self.next])
            self.next += 1
            try:
                entry.prep = prepare(self.writer, entry.source, self.max_bytes)
            except Exception as exc:  # a store failure (or a bug): settled in order, nothing prepared after it
                entry.error = exc
            else:
                self._submit(entry)
            self.pending.append(entry)

    def _submit(self, entry: _Entry) -> None:
        prep = entry.prep
        if self.pool is None or prep is None or prep.status is not None or prep.known or prep.doc_id in self.inflight:
            return  # nothing to embed, or the same bytes are already on their way
        size = self.writer.batch_size
        while self.pool is not None:
            try:
                entry.futures = [self.pool.submit(texts, size) for texts in batches(prep.chunks, size)]
                break
            except BrokenProcessPool:  # a worker died since the last file: restart (bounded), then send again
                entry.cancel()
                entry.futures = []
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
            e.futures = []
        if resubmit:
            self._resubmit()

    def _resubmit(self) -> None:
        for e in self.pending:
            if not e.futures:
                self._submit(e)

    # --- settling files in order ---------------------------------------------------------------------
    def _settle(self, entry: _Entry, total: int) -> tuple[FileStatus, str | None]:
        source = entry.source

        def report(stage: str, done: int, n: int) -> None:
            self.notify(ProgressEvent(stage, entry.index, total, source.name, done, n))

        report("read", 0, 0)
        try:
            if entry.error is not None:
                raise entry.error
            return commit(self.writer, entry.prep, self.keep, report, entry.embed()), None
        except StoreFailure as exc:
            return FileStatus(source.name, "failed", f"store error: {exc}", path=source.key), str(exc)
        except BrokenProcessPool as exc:
            if entry.alone:  # it had the workers to itself: this file is what kills them
                self._restart()
                return FileStatus(source.name, "failed", f"an embedding worker died on this file ({exc}); nothing "
                                  "of it is visible", path=source.key), None
            # a worker died, on this file's batches or on a later file's: try this one again, alone
            self._restart(resubmit=False)
            entry.cancel()
            entry.futures, entry.alone = [], True
            self._submit(entry)
            try:
                return self._settle(entry, total)
            finally:
                self._resubmit()
        except Exception as exc:  # e.g. the embedder failed on this file
            log.exception("ingest of %s failed", source.key)
            return FileStatus(source.name, "failed", f"{type(exc).__name__}: {exc}", path=source.key), None
        finally:
            if entry.futures:
                self.inflight.discard(entry.prep.doc_id)

    def run(self) -> tuple[list[FileStatus], str | None]:
        statuses: list[FileStatus] = []
        store_error = None
        total = len(self.sources)
        try:
            while self.pending or self.next < total:
                if store_error is None:
                    self._fill()
                if not self.pending:  # after a store failure nothing is prepared any more
                    self.pending.append(_Entry(self.next, self.sources[self.next]))
                    self.next += 1
                entry = self.pending.popleft()
                if store_error is not None:
                    entry.cancel()
                    statuses.append(FileStatus(entry.source.name, "failed", f"not attempted: the store failed "
                                               f"({store_error})", path=entry.source.key))
                    continue
                status, store_error = self._settle(entry, total)
                statuses.append(status)
                self.notify(ProgressEvent("done", entry.index + 1, total, entry.source.name))
        finally:
            for e in self.pending:
                e.cancel()
        return statuses, store_error


def ingest_with_workers(writer: DocumentWriter, sources: Sequence[Source], workers: int, keep: str, max_bytes: int,
                        notify: Progress) -> tuple[list[FileStatus], str | None]:
    """Ingest ``sources`` with ``workers`` embedding processes; returns the statuses and the store error, if any.
    Raises ``WorkersUnavailable`` when the workers cannot start at all (nothing was touched then)."""
    pool = EmbedPool(WorkerSpec.of(writer.encoders.embedder, workers), workers)
    job = BulkIngest(writer, sources, pool, keep, max_bytes, notify)
    try:
        return job.run()
    finally:
        if job.pool is not None:
            job.pool.close()
