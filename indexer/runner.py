"""How the pipeline's write runs are set up: one ingest (files into the serving collection) and the loops a reindex
runs (``reindex.Rebuild``), each an ``ingest.IngestLoop`` with the pipeline's settings, where its vectors come from
(this process, bulk worker processes, or a background job's worker) and the HNSW build after it.

The caller holds the pipeline's write lock; a settled file marks the document listing as changed (``Catalog``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from . import catalog
from .background import Background
from .bulk import pool_feed
from .diskspace import check_space
from .encoders import Encoders
from .files import FileStore, Source, expand
from .ingest import Feed, FeedFor, IngestLoop, ReadAhead
from .results import IndexerError, IngestReport, ProgressEvent
from .sandbox import FileCaps
from .settings import IndexerSettings
from .store import Collection, Root, StoreError
from .workers import WorkersUnavailable
from .writer import DocumentWriter

log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]


class IngestRunner:
    """Runs ingests into a collection of ``root``; ``background`` is where background jobs embed, ``files`` the kept
    copies, ``listing`` the document listing to mark as changed."""

    def __init__(self, settings: IndexerSettings, root: Root, files: FileStore, background: Background,
                 listing: catalog.Catalog):
        self.settings = settings
        self.root = root
        self.files = files
        self.background = background
        self.listing = listing

    def ingest(self, collection: Collection, encoders: Callable[[], Encoders], items: Iterable,
               progress: Progress | None, workers: int, cancel: threading.Event | None, replace: bool,
               background: bool, started: float) -> IngestReport:
        """One ingest into ``collection`` with ``encoders()`` (see ``Pipeline.ingest``), under the pipeline's write
        lock; the report's seconds count from ``started`` (a ``time.perf_counter()``)."""
        sources: list[Source] = expand(items)
        s = self.settings
        check_space(s.data_dir, s.store_dir if self.root.owns_folder else None,
                    [x.size for x in sources if x.stored is None and not x.skip], s.max_chunks,
                    s.keep_files != "none", s.disk_reserve_mb)
        loop = self.loop(DocumentWriter(collection, encoders(), self.files), progress,
                         caps=FileCaps.from_settings(s), cancel=cancel, replace=replace,
                         nice=self.background.nice if background and self.background.in_worker else 0)
        feed = self.feed(workers, background) if sources else ReadAhead
        statuses, store_error = loop.run(sources, feed(loop, sources))
        if store_error is None and any(f.status == "ok" for f in statuses):
            self.maybe_optimize(collection, loop.notify)
        return IngestReport(tuple(statuses), time.perf_counter() - started, store_error)

    def feed(self, workers: int, background: bool) -> FeedFor:
        """Where a run's vectors come from: this process, ``workers`` bulk processes, or a background job's worker
        (``IndexerError`` when those cannot start: nothing was touched then)."""
        if background and self.background.in_worker:
            def make(loop: IngestLoop, sources) -> Feed:
                return self.background.feed(loop, sources, workers)
        elif workers > 1:
            def make(loop: IngestLoop, sources) -> Feed:
                return pool_feed(loop, sources, workers)
        else:
            return ReadAhead

        def started(loop: IngestLoop, sources) -> Feed:
            try:
                return make(loop, sources)
            except WorkersUnavailable as exc:
                raise IndexerError(str(exc)) from exc

        return started

    def loop(self, writer: DocumentWriter, progress: Progress | None, **options) -> IngestLoop:
        """An ingest loop writing through ``writer``; each settled file marks the listing as changed."""
        def notify(event: ProgressEvent) -> None:
            if event.stage == "done":  # a file was settled: listings read the store again
                self.listing.changed()
            if progress is not None:
                progress(event)

        s = self.settings
        return IngestLoop(writer, s.keep_files, s.max_file_bytes, s.batch_size, notify, **options)

    def maybe_optimize(self, collection: Collection, notify: Progress) -> None:
        """Build the HNSW index once ``MOESEARCH_HNSW_THRESHOLD`` points wait for it."""
        threshold = self.settings.hnsw_threshold
        if threshold and collection.unindexed() >= threshold:
            notify(ProgressEvent("index", 0, 0))
            t0 = time.perf_counter()
            try:  # embedded store: built in a child process, searches go on (store/edge_build.py)
                collection.optimize()
            except StoreError as exc:  # e.g. no disk for the copy: the files are in; search stays exact meanwhile
                log.warning("could not build the HNSW index for %s: %s", collection.name, exc)
                return
            log.info("built HNSW for %s in %.1f s", collection.name, time.perf_counter() - t0)
