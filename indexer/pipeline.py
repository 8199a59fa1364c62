"""The indexer API (used by the CLI and the app): one ``Pipeline`` object per process.

>>> with Pipeline() as p:
...     report = p.ingest(["docs/", Source.upload("notes.txt", b"...")], progress=print)
...     hits = p.search("protein folding", k=5, filters=SearchFilters(doc_types=("pdf",)))
...     bulk = p.ingest(["corpus/"], workers=2)  # two embedding processes; the same points as workers=1
...     job = p.ingest(["upload/"], background=True)  # a serving process's job: a nicer process embeds

This module keeps the lifecycle (opening the store, the active collection, switching it) and the locks; the
work is done by ``serving.py`` (which collection serves, with which model), ``runner.py`` (an ingest's loop, where
its vectors come from: ``ingest.py``, ``bulk.py``, ``background.py``), ``maintenance.py`` (reindex and gc, with
``reindex.py``), ``search.py``, ``catalog.py`` (document listings) and ``model_view.py`` (model card, router
choices).

Thread safety: one Pipeline may be shared by many threads (app sessions).  Searches and listings run
concurrently; ingest, delete and reindex are serialised by its one write lock; a reindex switches the active
collection under an exclusive lock, so a search sees either the old complete index or the new complete one.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import catalog
from .background import Background
from .files import FileStore, Source
from .maintenance import CollectionInfo, GcReport, Maintenance
from .model_view import ModelInfo, ModelTracker, RoutingView, model_info, onnx_variant, routing_view
from .reindex import ReindexCancelled, spec_of
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
    SimilarDocument,
    Stats,
)
from .runner import IngestRunner
from .rwlock import RWLock
from .schema import CHUNK, DOC_RECORDS, VISIBLE, WRITING, IndexSpec
from .search import merge_text, neighbour_hits, run_search, similar_documents
from .serving import Active, open_active
from .settings import IndexerSettings
from .store import Match, Root, StoreError, StoreLockedError, open_root
from .writer import DocumentWriter

__all__ = ["AmbiguousTarget", "CollectionInfo", "DocumentFile", "DocumentInfo", "Facets", "FileStatus", "GcReport",
           "Hit", "IndexerError", "IngestReport", "ModelInfo", "Pipeline", "ProgressEvent", "ReindexCancelled",
           "RoutingView", "SearchFilters", "SimilarDocument", "Source", "Stats", "StoreError", "StoreLockedError"]
Progress = Callable[[ProgressEvent], None]
CATALOG_TTL = 5.0  # seconds: how stale a document listing may be when other processes write (server backend)


class AmbiguousTarget(IndexerError):
    """A file name or path that several documents share, given where one document is meant (``matches``)."""

    def __init__(self, target: str, matches: Iterable[DocumentInfo]):
        self.target, self.matches = target, tuple(matches)
        listing = "; ".join(f"{d.doc_id} ({d.path or d.source})" for d in self.matches)
        super().__init__(f"{len(self.matches)} documents match {target!r}: {listing}; give the doc_id or the full "
                         "path of the one you mean")


class Pipeline:
    def __init__(self, settings: IndexerSettings | None = None, *, embedder=None, root: Root | None = None,
                 read_only: bool = False):
        """``read_only``: for a caller that only reads (search, listings); if the embedded store's disk is
        read-only or full, it is read from a private copy and every write is refused (``self.read_only``)."""
        self.settings = settings or IndexerSettings.from_env()
        self.root = root if root is not None else open_root(self.settings, read_only=read_only)
        self.read_only = bool(getattr(self.root, "read_only", False))
        self._write = threading.RLock()  # the one write lock: one ingest / delete / reindex at a time
        self._swap = RWLock()  # readers: searches; writer: switching the active collection, close
        self._closed = False
        self._catalog = catalog.Catalog(ttl=CATALOG_TTL if self.root.shared else None)
        self._routing = functools.lru_cache(maxsize=64)(self._route)
        self._model_info: dict[int, ModelInfo] = {}
        self._background = Background(self.settings)  # where background jobs embed (starts nothing until one runs)
        try:
            # the configured model, followed live (a published name's `current` pointer; see model_view.py)
            self._models = ModelTracker(self.settings.model_dir, self._load_model, embedder,
                                        self.settings.model_poll_seconds)
            self.files = FileStore(self.settings.files_dir)
            self._active = open_active(self.root, self.settings, self.embedder, self.target, self._load_model)
        except BaseException:
            self.root.close()
            raise
        self._runner = IngestRunner(self.settings, self.root, self.files, self._background, self._catalog)
        self._maintenance = Maintenance(self.root, self.settings, self._models, self._runner, self._write,
                                        self._current, self._switch)

    # --- lifecycle ---------------------------------------------------------------------------------
    @property
    def embedder(self):
        """The model the settings name now (what a reindex builds with); queries use the active index's model."""
        return self._models.embedder

    @property
    def target(self) -> IndexSpec:
        """The index spec the settings ask for now (model version included)."""
        return spec_of(self.embedder, self.settings)

    def _load_model(self, folder: Path, dim: int | None = None):
        from embedder.runtime import Embedder

        return Embedder(folder, device=self.settings.device, dim=dim or self.settings.dim,
                        cpu_variant=self.settings.onnx_variant)

    def close(self) -> None:
        with self._write, self._swap.write():
            if not self._closed:
                self._closed = True
                self.root.close()
        self._background.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _current(self) -> Active:
        if self._closed:
            raise IndexerError("the pipeline is closed")
        return self._active

    def _switch(self, active: Active) -> None:
        """Make ``active`` serve, in one step for searches (a reindex calls it under the write lock)."""
        with self._swap.write():
            self.root.activate(active.collection.name)
            self._active = active
        self._routing.cache_clear()
        self._catalog.changed()

    def _usable(self, active: Active):
        if active.encoders is None:
            folder = active.spec.model_dir or "folder unknown"
            raise IndexerError(f"the index was built with model {active.spec.model_id!r} ({folder}), which cannot be "
                               f"loaded; run `python -m indexer reindex` to rebuild it with {self.target.model_id!r}")
        return active.encoders

    def _writable(self) -> None:
        if self.read_only:
            raise IndexerError(f"the index is open read-only ({self.root.location}): its disk is read-only or full, "
                               "so it can be searched but not changed")

    # --- writes --------------------------------------------------------------------------------------------
    def ingest(self, items: Iterable[str | os.PathLike | Source] | str | os.PathLike | Source,
               progress: Progress | None = None, workers: int = 1, *, cancel: threading.Event | None = None,
               replace: bool = False, background: bool = False) -> IngestReport:
        """Index files, folders (recursive) and uploads (``Source.upload``); one status per file, never stops on a
        bad file.  ``workers`` > 1 embeds in that many worker processes (bulk ingest, see ``bulk.py``); same
        results.  Each new file is read in a reader process under the per-file limits (``sandbox.py``).  Setting
        ``cancel`` stops the run: files done stay, the one in progress is rolled back, the rest are reported
        "not attempted".  ``replace``: an upload under a name already indexed replaces that document (default:
        both are kept, the new one as ``name (2).ext``).  ``background``: the caller serves searches meanwhile
        (the app): embedding and reading run in lower-priority processes with a core left to queries
        (``background.py``, MOESEARCH_INGEST_*); same results."""
        self._writable()
        if isinstance(items, str | os.PathLike | Source):
            items = [items]
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        t0 = time.perf_counter()
        with self._write:
            active = self._current()
            return self._runner.ingest(active.collection, lambda: self._usable(active), items, progress, workers,
                                       cancel, replace, background, t0)

    def optimize(self) -> bool:
        """Build the HNSW index now (embedded store; servers index by themselves)."""
        with self._write:
            return self._current().collection.optimize()

    def delete(self, target: str) -> list[str]:
        """Delete a document by doc_id, path or file name; returns the doc_ids removed ([] if none matched).  A path
        or file name that several documents share is refused (``AmbiguousTarget`` lists them): give the doc_id."""
        self._writable()
        with self._write:
            active = self._current()
            doc_ids = catalog.resolve(active.collection, target)
            if len(doc_ids) > 1:
                raise AmbiguousTarget(target, catalog.by_id(active.collection, doc_ids).values())
            writer = DocumentWriter(active.collection, active.encoders, self.files)
            for doc_id in doc_ids:
                writer.delete(doc_id)
            self._catalog.changed()
            return doc_ids

    def move(self, doc_id: str, path: str) -> None:
        """Record that a document's file is now at ``path`` (its record and chunks; nothing is embedded again)."""
        self._writable()
        with self._write:
            collection = self._current().collection
            collection.set_payload([Match("doc_id", (doc_id,))], {"path": path, "source": Path(path).name})
            self._catalog.changed()

    def reindex(self, progress: Progress | None = None, force: bool = False,
                model: str | os.PathLike | None = None, *, cancel: threading.Event | None = None,
                background: bool = False) -> IngestReport:
        """Re-embed every document with the configured model (or ``model``: a folder, a published NAME or
        NAME@VERSION, e.g. a previous version for a rollback) into a new collection, then switch to it in one step.

        Searches keep using the old collection with the old model until then; ingest and delete go on meanwhile
        and are carried over by the catch-up passes, the last one under the write lock (``reindex.Rebuild``).
        A killed reindex resumes where it stopped; the previous collection is kept for a rollback when its model
        is a published version (``gc`` drops it).  ``cancel`` stops it after the document in progress
        (``ReindexCancelled``): the serving index is unchanged and the next reindex continues the half-built one.
        ``background``: as for ``ingest``, the documents are embedded in a lower-priority process."""
        self._writable()
        return self._maintenance.reindex(progress, force, model, cancel, background)

    def collections(self) -> list[CollectionInfo]:
        """Every collection of this store: the active one, previous ones kept for rollback, unfinished ones."""
        return self._maintenance.collections()

    def gc(self, dry_run: bool = False, models: bool = False) -> GcReport:
        """Drop every collection but the active one (previous indexes, unfinished reindexes); with ``models`` also
        the published model versions no remaining index uses (never a name's ``current``).  ``dry_run``: only say
        what would go."""
        self._writable()
        return self._maintenance.gc(dry_run, models)

    # --- reads ---------------------------------------------------------------------------------------------
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

    def documents(self, offset: int = 0, limit: int | None = None) -> list[DocumentInfo]:
        """The indexed documents sorted by file name, ``limit`` of them from ``offset`` (all by default).  The
        list is read from the store again only after a change (see ``catalog.py``)."""
        with self._swap.read():
            return self._catalog.page(self._current().collection, offset, limit)

    def similar(self, target: str, k: int = 5) -> list[SimilarDocument]:
        """The ``k`` documents most like one document (by doc_id, path or file name; the first match), by their
        similarity vectors: the model's ``symmetric`` task expert where it has one, else its document embedding."""
        with self._swap.read():
            active = self._current()
            doc_ids = catalog.resolve(active.collection, target)
            if not doc_ids:
                raise IndexerError(f"no document matches {target!r} (give a doc_id, a path or a file name)")
            return similar_documents(active.collection, active.spec, doc_ids[0], k)

    def documents_by_id(self, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]:
        """The records of these documents (e.g. of search hits), by doc_id; unknown ids are left out."""
        with self._swap.read():
            return catalog.by_id(self._current().collection, doc_ids)

    def facets(self) -> Facets:
        """The file names and document types in the index (for search filters)."""
        with self._swap.read():
            return self._catalog.facets(self._current().collection)

    def document_file(self, doc_id: str) -> DocumentFile:
        """A handle on the original of an ingested document (kept copy, or the file at its path if unchanged);
        its bytes are read by ``DocumentFile.read()``."""
        with self._swap.read():
            return catalog.document_file(self._current().collection, self.files, doc_id)

    def stats(self) -> Stats:
        """Counts, the store, and which model serves queries (``serving_model``) against the one the settings name
        now (``current_model``, polled: a newly published version is seen here); ``stale``: a reindex is needed."""
        self._models.poll()
        target = self.target
        with self._swap.read():
            active = self._current()
            col = active.collection
            docs, chunks = col.count(DOC_RECORDS), col.count(VISIBLE)
            incomplete = col.count([Match("kind", (CHUNK,)), Match("state", (WRITING,))])
            store, cluster = self.root.info(col.name), self.root.cluster(col.name)
        return Stats(documents=docs, chunks=chunks, backend=self.root.kind, location=self.root.location,
                     collection=col.name, model_id=active.spec.model_id, dim=active.spec.dim,
                     configured_model_id=target.model_id, reindex_needed=not active.spec.same_index(target),
                     incomplete_chunks=incomplete, cluster=cluster, serving_model=active.spec.model_label,
                     current_model=self._models.label,
                     stale=not active.spec.same_index(target) or bool(self._models.error),
                     reindexing=self._maintenance.running,
                     extra={"chunk_tokens": active.spec.chunk_tokens, "chunk_overlap": active.spec.chunk_overlap,
                            "embedder_provider": getattr(self.embedder, "provider", ""),
                            "onnx_variant": onnx_variant(self._serving()),
                            "current_model_error": self._models.error, "store": store})

    # --- the model -------------------------------------------------------------------------------------------
    def _serving(self):
        """The embedder that embeds queries: the active index's model (the configured one if it cannot load)."""
        encoders = self._active.encoders
        return encoders.embedder if encoders is not None else self.embedder

    def model_info(self, current: bool = False) -> ModelInfo:
        """The model serving queries (the one the active index was built with), or with ``current`` the one the
        settings name now: id, version, folder, card, MoE mode and tasks, the onnxruntime provider really running."""
        embedder = self.embedder if current else self._serving()
        if id(embedder) not in self._model_info:
            self._model_info[id(embedder)] = model_info(embedder)
        return self._model_info[id(embedder)]

    def routing(self, text: str, query: bool = True) -> RoutingView | None:
        """The router's choices for ``text``'s own tokens (as a query or a document); None for a model without
        routers.  Kept for the last few texts, so a page that reruns does not run the model again."""
        return self._routing(text, query)

    def _route(self, text: str, query: bool) -> RoutingView | None:
        return routing_view(self._serving(), text, query)
