"""The indexer API (used by the CLI and the app): one ``Pipeline`` object per process.

>>> with Pipeline() as p:
...     report = p.ingest(["docs/", Source.upload("notes.txt", b"...")], progress=print)
...     hits = p.search("protein folding", k=5, filters=SearchFilters(doc_types=("pdf",)))
...     bulk = p.ingest(["corpus/"], workers=2)  # two embedding processes; the same points as workers=1
...     job = p.ingest(["upload/"], background=True)  # a serving process's job: a nicer process embeds

This module keeps the lifecycle (opening the store, the active collection, reindex switching) and the locks; the
work is done by ``ingest.py`` (the ingest loop), ``bulk.py`` (embedding workers), ``background.py`` (where the
jobs of a serving process embed), ``reindex.py``, ``search.py``, ``catalog.py`` (document listings) and
``model_view.py`` (model card, router choices).

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
from .background import Background
from .bulk import pool_feed
from .diskspace import check_space
from .encoders import Encoders
from .files import FileStore, Source, expand
from .ingest import Feed, FeedFor, IngestLoop, ReadAhead
from .model_view import ModelInfo, ModelTracker, RoutingView, model_info, onnx_variant, routing_view
from .reindex import (
    BUILDING,
    READY,
    CollectionInfo,
    GcReport,
    Rebuild,
    ReindexCancelled,
    describe,
    keep_after_switch,
    read_meta,
    registry_roots,
    spec_of,
    unused_collections,
)
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
from .rwlock import RWLock
from .sandbox import FileCaps
from .schema import CHUNK, DOC_RECORDS, META_ID, VISIBLE, WRITING, IndexSpec, collection_spec
from .search import merge_text, neighbour_hits, run_search, similar_documents
from .settings import IndexerSettings
from .store import Collection, Match, PointRecord, Root, StoreError, StoreLockedError, open_root
from .workers import WorkersUnavailable
from .writer import DocumentWriter

__all__ = ["CollectionInfo", "DocumentFile", "DocumentInfo", "Facets", "FileStatus", "GcReport", "Hit",
           "IndexerError", "IngestReport", "ModelInfo", "Pipeline", "ProgressEvent", "ReindexCancelled", "RoutingView",
           "SearchFilters",
           "SimilarDocument", "Source", "Stats", "StoreError", "StoreLockedError"]
log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
CATALOG_TTL = 5.0  # seconds: how stale a document listing may be when other processes write (server backend)


@dataclass
class _Active:
    collection: Collection
    spec: IndexSpec
    encoders: Encoders | None  # None: the model that built this index cannot be loaded (reindex needed)


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
        self._catalog = catalog.Catalog(ttl=CATALOG_TTL if self.root.kind == "server" else None)
        self._routing = functools.lru_cache(maxsize=64)(self._route)
        self._model_info: dict[int, ModelInfo] = {}
        self._reindexing = threading.Lock()  # one reindex at a time; ingest and delete go on while it runs
        self._background = Background(self.settings)  # where background jobs embed (starts nothing until one runs)
        try:
            # the configured model, followed live (a published name's `current` pointer; see model_view.py)
            self._models = ModelTracker(self.settings.model_dir, self._load_model, embedder,
                                        self.settings.model_poll_seconds)
            self.files = FileStore(self.settings.files_dir)
            self._active = self._open_active()
        except BaseException:
            self.root.close()
            raise

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
        if self.root.kind in ("edge", "local"):  # one process owns the folder: no metadata = a crash's leftover
            for other in self.root.collections():  # (kept: previous indexes for rollback, resumable reindexes)
                if other != name and read_meta(self.root.open(other))[0] is None:
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
        """Encoders matching an older index, so it keeps serving (with the model that built it) until a reindex;
        None if that model cannot be loaded.  An index without a recorded version (older moesearch) is served by
        the configured model when the model id matches, as before versions were recorded."""
        target = self.target
        if (spec.model_id == target.model_id and spec.dim == target.dim
                and spec.model_version in ("", target.model_version)):
            return Encoders(self.embedder, spec)
        folder = Path(spec.model_dir) if spec.model_dir else None
        if folder is None or not (folder / "moesearch.json").is_file():
            return None
        try:
            old = self._load_model(folder, spec.dim)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("cannot load %s to serve the old index: %s", folder, exc)
            return None
        same = old.model_id == spec.model_id and spec.model_version in ("", old.model_version)
        return Encoders(old, spec) if same else None

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

    def _writable(self) -> None:
        if self.read_only:
            raise IndexerError(f"the index is open read-only ({self.root.location}): its disk is read-only or full, "
                               "so it can be searched but not changed")

    # --- ingest ----------------------------------------------------------------------------------------
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
            sources = expand(items)
            s = self.settings
            check_space(s.data_dir, s.store_dir if self.root.kind in ("edge", "local") else None,
                        [x.size for x in sources if x.stored is None and not x.skip], s.max_chunks,
                        s.keep_files != "none", s.disk_reserve_mb)
            loop = self._loop(DocumentWriter(active.collection, self._usable(active), self.files), progress,
                              caps=FileCaps.from_settings(self.settings), cancel=cancel, replace=replace,
                              nice=self._background.nice if background and self._background.in_worker else 0)
            feed = self._feed(workers, background) if sources else ReadAhead
            statuses, store_error = loop.run(sources, feed(loop, sources))
            if store_error is None and any(s.status == "ok" for s in statuses):
                self._maybe_optimize(active.collection, loop.notify)
        return IngestReport(tuple(statuses), time.perf_counter() - t0, store_error)

    def _feed(self, workers: int, background: bool) -> FeedFor:
        """Where a run's vectors come from: this process, ``workers`` bulk processes, or a background job's worker
        (``IndexerError`` when those cannot start: nothing was touched then)."""
        if background and self._background.in_worker:
            def make(loop: IngestLoop, sources) -> Feed:
                return self._background.feed(loop, sources, workers)
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

    def _loop(self, writer: DocumentWriter, progress: Progress | None, **options) -> IngestLoop:
        def notify(event: ProgressEvent) -> None:
            if event.stage == "done":  # a file was settled: listings read the store again
                self._catalog.changed()
            if progress is not None:
                progress(event)

        s = self.settings
        return IngestLoop(writer, s.keep_files, s.max_file_bytes, s.batch_size, notify, **options)

    def _maybe_optimize(self, collection: Collection, notify: Progress) -> None:
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

    def delete(self, target: str) -> list[str]:
        """Delete documents by doc_id, path or file name; returns the doc_ids removed ([] if none matched)."""
        self._writable()
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
                     reindexing=self._reindexing.locked(),
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

    # --- reindex -------------------------------------------------------------------------------------------
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
        if not self._reindexing.acquire(blocking=False):
            raise IndexerError("a reindex is already running; wait for it to finish")
        try:
            return self._reindex(progress, force, model, cancel, background)
        finally:
            self._reindexing.release()

    def _reindex(self, progress: Progress | None, force: bool, model, cancel: threading.Event | None,
                 background: bool) -> IngestReport:
        t0 = time.perf_counter()
        if model is None:
            self._models.poll(force=True)
            if self._models.error:
                raise IndexerError(f"cannot reindex: {self._models.error}")
        embedder = self.embedder if model is None else self._models.load(model, self._serving())
        target = spec_of(embedder, self.settings)
        with self._write:
            old = self._current()
            if old.spec.same_index(target) and not force:
                if model is not None:
                    self._models.follow(embedder)
                return IngestReport((), 0.0)
            new = self._building(target, old.collection.name, fresh=force)
        log.info("reindex: building %s with %s", new.name, target.model_label)
        encoders = Encoders(embedder, target)
        rebuild = Rebuild(old.collection, new, encoders, lambda writer: self._loop(writer, progress, cancel=cancel),
                          cancel, feed=self._feed(1, background))
        try:
            rebuild.catch_up()  # without the write lock: ingest and delete go on in the serving index
            self._maybe_optimize(new, progress or (lambda _e: None))
            rebuild.check_cancelled()
            with self._write:
                statuses = rebuild.finish()
                new.upsert([PointRecord(META_ID, target.to_payload(READY))])
                with self._swap.write():
                    self.root.activate(new.name)
                    self._active = _Active(new, target, encoders)
                self._routing.cache_clear()
                if not keep_after_switch(old.spec):
                    self.root.drop(old.collection.name)
                self._catalog.changed()
        except ReindexCancelled:
            raise  # the half-built collection stays for the next reindex (it is labelled building)
        except BaseException:
            if self.root.active() != new.name:
                self.root.drop(new.name)
            raise
        if model is not None:
            self._models.follow(embedder)
        return IngestReport(tuple(statuses), time.perf_counter() - t0)

    def _building(self, target: IndexSpec, active: str, fresh: bool) -> Collection:
        """The collection to build ``target`` into: the one already named for it (a killed reindex, or the index
        kept from before a switch) unless ``fresh``, else a new one."""
        name = target.collection_name(self.settings.collection)
        if name == active:
            name = f"{name}-r{int(time.time())}"
        elif not fresh and name in self.root.collections():
            col = self.root.open(name)
            spec, state = read_meta(col)
            if spec is not None and spec.same_index(target):
                log.info("reindex: continuing in %s (%s)", name, state)
                col.upsert([PointRecord(META_ID, target.to_payload(BUILDING))])
                return col
        return self._create(name, target, BUILDING)

    def collections(self) -> list[CollectionInfo]:
        """Every collection of this store: the active one, previous ones kept for rollback, unfinished ones."""
        active = self.root.active()
        return [describe(self.root, name, active) for name in self.root.collections()]

    def gc(self, dry_run: bool = False, models: bool = False) -> GcReport:
        """Drop every collection but the active one (previous indexes, unfinished reindexes); with ``models`` also
        the published model versions no remaining index uses (never a name's ``current``).  ``dry_run``: only say
        what would go."""
        self._writable()
        with self._write:
            if self._reindexing.locked():
                raise IndexerError("a reindex is running; run gc after it")
            active = self._current()
            drop = unused_collections(self.root, active.collection.name)
            versions: list[tuple[Path, str]] = []
            if models:
                from embedder.registry import removable

                specs = [active.spec, self.target]
                for info in drop:
                    found = read_meta(self.root.open(info.name))[0]
                    specs += [found] if found is not None else []
                for root in sorted(registry_roots(specs)):
                    versions += [(root, v) for v in removable(root, {active.spec.model_version})]
            if not dry_run:
                from embedder.registry import remove_version

                for info in drop:
                    self.root.drop(info.name)
                for root, version in versions:
                    remove_version(root, version)
        return GcReport(tuple(drop), tuple(f"{root.name}@{v}" for root, v in versions),
                        tuple(str(root / v) for root, v in versions), dry_run)
