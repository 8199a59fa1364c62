"""The indexer API (used by the CLI and the app): one ``Pipeline`` object per process.

>>> with Pipeline() as p:
...     report = p.ingest(["docs/", Source.upload("notes.txt", b"...")], progress=print)
...     hits = p.search("protein folding", k=5, filters=SearchFilters(doc_types=("pdf",)))
...     bulk = p.ingest(["corpus/"], workers=2)  # two embedding processes; the same points as workers=1

This module keeps the lifecycle (opening the store, the active collection, reindex switching) and the locks; the
work is done by ``ingest.py`` (the ingest loop), ``bulk.py`` (embedding workers), ``reindex.py``, ``search.py``,
``catalog.py`` (document listings) and ``model_view.py`` (model card, router choices).

Thread safety: one Pipeline may be shared by many threads (app sessions).  Searches and listings run
concurrently; ingest, delete and reindex are serialised by its one write lock; a reindex switches the active
collection under an exclusive lock, so a search sees either the old complete index or the new complete one.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from .bulk import run_with_workers
from .encoders import Encoders
from .files import FileStore, Source, expand
from .ingest import IngestLoop, ReadAhead
from .model_view import ModelInfo, RoutingView, model_info, routing_view
from .reindex import stored_sources
from .results import (
    DocumentFile,
    DocumentInfo,
    Facets,
    FileStatus,
    Hit,
    IndexerError,
    IngestReport,
    ProgressEvent,
    SearchFilters,
    Stats,
)
from .rwlock import RWLock
from .schema import CHUNK, DOC_RECORDS, META_ID, VISIBLE, WRITING, IndexSpec, collection_spec
from .search import merge_text, neighbour_hits, run_search
from .settings import IndexerSettings
from .store import Collection, Match, PointRecord, Root, StoreError, StoreLockedError, open_root
from .workers import WorkersUnavailable
from .writer import DocumentWriter

__all__ = ["DocumentFile", "DocumentInfo", "Facets", "FileStatus", "Hit", "IndexerError", "IngestReport",
           "ModelInfo", "Pipeline", "ProgressEvent", "RoutingView", "SearchFilters", "Source", "Stats", "StoreError",
           "StoreLockedError"]
log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
CATALOG_TTL = 5.0  # seconds: how stale a document listing may be when other processes write (server backend)


@dataclass
class _Active:
    collection: Collection
    spec: IndexSpec
    encoders: Encoders | None  # None: the model that built this index cannot be loaded (reindex needed)


class Pipeline:
    def __init__(self, settings: IndexerSettings | None = None, *, embedder=None, root: Root | None = None):
        self.settings = settings or IndexerSettings.from_env()
        self.root = root if root is not None else open_root(self.settings)
        self._write = threading.RLock()  # the one write lock: one ingest / delete / reindex at a time
        self._swap = RWLock()  # readers: searches; writer: switching the active collection, close
        self._closed = False
        self._catalog = catalog.Catalog(ttl=CATALOG_TTL if self.root.kind == "server" else None)
        self._routing = functools.lru_cache(maxsize=64)(self._route)
        self._model_info: ModelInfo | None = None
        try:
            if embedder is None:
                from embedder.runtime import Embedder

                embedder = Embedder(self.settings.model_dir, device=self.settings.device, dim=self.settings.dim)
            self.embedder = embedder
            self.target = Encoders.spec_for(embedder, self.settings)
            self.files = FileStore(self.settings.files_dir)
            self._active = self._open_active()
        except BaseException:
            self.root.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------------------
    def _create(self, name: str, spec: IndexSpec, state: str) -> Collection:
        col = self.root.create(name, collection_spec(spec, self.settings))
        col.upsert([PointRecord(META_ID, spec.to_payload(state))])
        return col

    def _open_active(self) -> _Active:
        name = self.root.active()
        if name is None:
            name = self.target.collection_name(self.settings.collection)
            col = self._create(name, self.target, "ready")
            self.root.activate(name)
            return _Active(col, self.target, Encoders(self.embedder, self.target))
        if self.root.kind in ("edge", "local"):  # one process owns the folder: others are leftovers of a crash
            for other in self.root.collections():
                if other != name:
                    log.warning("dropping %s, left over by an interrupted reindex", other)
                    self.root.drop(other)
        col = self.root.open(name)
        meta = col.retrieve([META_ID])
        if not meta:
            raise StoreError(f"collection {name!r} at {self.root.location} has no moesearch metadata")
        spec = IndexSpec.from_payload(meta[0].payload)
        if spec.same_index(self.target):
            return _Active(col, spec, Encoders(self.embedder, self.target))
        log.warning("the index %s was built with %s; settings ask for %s: run `python -m indexer reindex`",
                    name, spec.identity(), self.target.identity())
        return _Active(col, spec, self._encoders_for(spec))

    def _encoders_for(self, spec: IndexSpec) -> Encoders | None:
        """Encoders matching an older index, so it keeps serving until a reindex (None if impossible)."""
        if spec.model_id == self.target.model_id and spec.dim == self.target.dim:
            return Encoders(self.embedder, spec)
        folder = Path(spec.model_dir) if spec.model_dir else None
        if folder is None or not (folder / "moesearch.json").is_file():
            return None
        try:
            from embedder.runtime import Embedder

            old = Embedder(folder, device=self.settings.device, dim=spec.dim)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("cannot load %s to serve the old index: %s", folder, exc)
            return None
        return Encoders(old, spec) if old.model_id == spec.model_id else None

    def close(self) -> None:
        with self._write, self._swap.write():
            if not self._closed:
                self._closed = True
                self.root.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _current(self) -> _Active:
        if self._closed:
            raise IndexerError("the pipeline is closed")
        return self._active

    def _usable(self, active: _Active) -> Encoders:
        if active.encoders is None:
            folder = active.spec.model_dir or "folder unknown"
            raise IndexerError(f"the index was built with model {active.spec.model_id!r} ({folder}), which cannot be "
                               f"loaded; run `python -m indexer reindex` to rebuild it with {self.target.model_id!r}")
        return active.encoders

    # --- ingest ----------------------------------------------------------------------------------------
    def ingest(self, items: Iterable[str | os.PathLike | Source] | str | os.PathLike | Source,
               progress: Progress | None = None, workers: int = 1) -> IngestReport:
        """Index files, folders (recursive) and uploads (``Source.upload``); one status per file, never stops on a
        bad file.  ``workers`` > 1 embeds in that many worker processes (bulk ingest, see ``bulk.py``); same
        results."""
        if isinstance(items, str | os.PathLike | Source):
            items = [items]
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        t0 = time.perf_counter()
        with self._write:
            active = self._current()
            sources = expand(items)
            loop = self._loop(DocumentWriter(active.collection, self._usable(active), self.files), progress)
            if workers > 1 and sources:
                try:
                    statuses, store_error = run_with_workers(loop, sources, workers)
                except WorkersUnavailable as exc:
                    raise IndexerError(str(exc)) from exc
            else:
                statuses, store_error = loop.run(sources, ReadAhead(loop, sources))
            if store_error is None and any(s.status == "ok" for s in statuses):
                self._maybe_optimize(active.collection, loop.notify)
        return IngestReport(tuple(statuses), time.perf_counter() - t0, store_error)

    def _loop(self, writer: DocumentWriter, progress: Progress | None) -> IngestLoop:
        def notify(event: ProgressEvent) -> None:
            if event.stage == "done":  # a file was settled: listings read the store again
                self._catalog.changed()
            if progress is not None:
                progress(event)

        s = self.settings
        return IngestLoop(writer, s.keep_files, s.max_file_bytes, s.batch_size, notify)

    def _maybe_optimize(self, collection: Collection, notify: Progress) -> None:
        threshold = self.settings.hnsw_threshold
        if threshold and collection.unindexed() >= threshold:
            notify(ProgressEvent("index", 0, 0))
            t0 = time.perf_counter()
            collection.optimize()
            log.info("built HNSW for %s in %.1f s", collection.name, time.perf_counter() - t0)

    def optimize(self) -> bool:
        """Build the HNSW index now (embedded store; servers index by themselves)."""
        with self._write:
            return self._current().collection.optimize()

    # --- search ------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: SearchFilters | dict | None = None,
               mode: str = "hybrid") -> list[Hit]:
        """Top-k chunks for ``query``: ``hybrid`` (dense + BM25, RRF), ``dense`` or ``keyword``."""
        if isinstance(filters, dict):
            filters = SearchFilters(**filters)
        with self._swap.read():
            active = self._current()
            s = self.settings
            return run_search(active.collection, self._usable(active), query, k, filters, mode, s.prefetch, s.rrf_k,
                              s.hnsw_ef)

    def neighbours(self, hit: Hit, before: int = 1, after: int = 1, query: str | None = None) -> list[Hit]:
        """``hit`` with its neighbouring chunks in document order (matched terms for ``query`` if given)."""
        with self._swap.read():
            active = self._current()
            return neighbour_hits(active.collection, hit, before, after, active.encoders, query)

    def expand(self, hit: Hit, before: int = 1, after: int = 1) -> str:
        """The text around ``hit``: it and its neighbours merged without the overlaps."""
        return merge_text(self.neighbours(hit, before, after))

    # --- documents -------------------------------------------------------------------------------------
    def documents(self, offset: int = 0, limit: int | None = None) -> list[DocumentInfo]:
        """The indexed documents sorted by file name, ``limit`` of them from ``offset`` (all by default).  The
        list is read from the store again only after a change (see ``catalog.py``)."""
        with self._swap.read():
            return self._catalog.page(self._current().collection, offset, limit)

    def documents_by_id(self, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]:
        """The records of these documents (e.g. of search hits), by doc_id; unknown ids are left out."""
        with self._swap.read():
            return catalog.by_id(self._current().collection, doc_ids)

    def facets(self) -> Facets:
        """The file names and document types in the index (for search filters)."""
        with self._swap.read():
            return self._catalog.facets(self._current().collection)

    def delete(self, target: str) -> list[str]:
        """Delete documents by doc_id, path or file name; returns the doc_ids removed ([] if none matched)."""
        with self._write:
            active = self._current()
            writer = DocumentWriter(active.collection, active.encoders, self.files)
            doc_ids = catalog.resolve(active.collection, target)
            for doc_id in doc_ids:
                writer.delete(doc_id)
            self._catalog.changed()
            return doc_ids

    def document_file(self, doc_id: str) -> DocumentFile:
        """A handle on the original of an ingested document (kept copy, or the file at its path if unchanged);
        its bytes are read by ``DocumentFile.read()``."""
        with self._swap.read():
            return catalog.document_file(self._current().collection, self.files, doc_id)

    def stats(self) -> Stats:
        with self._swap.read():
            active = self._current()
            col = active.collection
            docs, chunks = col.count(DOC_RECORDS), col.count(VISIBLE)
            incomplete = col.count([Match("kind", (CHUNK,)), Match("state", (WRITING,))])
            store, cluster = self.root.info(col.name), self.root.cluster(col.name)
        return Stats(documents=docs, chunks=chunks, backend=self.root.kind, location=self.root.location,
                     collection=col.name, model_id=active.spec.model_id, dim=active.spec.dim,
                     configured_model_id=self.target.model_id, reindex_needed=not active.spec.same_index(self.target),
                     incomplete_chunks=incomplete, cluster=cluster,
                     extra={"chunk_tokens": active.spec.chunk_tokens, "chunk_overlap": active.spec.chunk_overlap,
                            "embedder_provider": getattr(self.embedder, "provider", ""),
                            "store": store})

    # --- the model -------------------------------------------------------------------------------------------
    def model_info(self) -> ModelInfo:
        """The configured model: id, folder, card, the onnxruntime provider really running, its settings."""
        if self._model_info is None:
            self._model_info = model_info(self.embedder)
        return self._model_info

    def routing(self, text: str, query: bool = True) -> RoutingView | None:
        """The router's choices for ``text``'s own tokens (as a query or a document); None for a model without
        routers.  Kept for the last few texts, so a page that reruns does not run the model again."""
        return self._routing(text, query)

    def _route(self, text: str, query: bool) -> RoutingView | None:
        return routing_view(self.embedder, text, query)

    # --- reindex -------------------------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, force: bool = False) -> IngestReport:
        """Re-embed every document with the configured model into a new collection, then switch to it."""
        t0 = time.perf_counter()
        with self._write:
            old = self._current()
            if old.spec.same_index(self.target) and not force:
                return IngestReport((), 0.0)
            name = self.target.collection_name(self.settings.collection)
            if name == old.collection.name:
                name = f"{name}-r{int(time.time())}"
            new = self._create(name, self.target, "building")
            encoders = Encoders(self.embedder, self.target)
            try:
                loop = self._loop(DocumentWriter(new, encoders, self.files), progress)
                sources = stored_sources(old.collection)
                statuses, _ = loop.run(sources, ReadAhead(loop, sources))
                failed = [f"{f.name}: {f.reason}" for f in statuses if f.status == "failed"]
                if failed:  # switching now would lose these documents: keep the old index
                    raise IndexerError(f"reindex stopped, the index is unchanged: {len(failed)} document(s) could "
                                       f"not be rebuilt ({'; '.join(failed[:3])})")
                new.upsert([PointRecord(META_ID, self.target.to_payload("ready"))])
                self._maybe_optimize(new, loop.notify)
            except BaseException:
                self.root.drop(name)
                raise
            with self._swap.write():
                self.root.activate(name)
                self._active = _Active(new, self.target, encoders)
                self.root.drop(old.collection.name)
            self._catalog.changed()
        return IngestReport(tuple(statuses), time.perf_counter() - t0)
