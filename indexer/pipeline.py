"""The indexer API (used by the CLI and the app): one ``Pipeline`` object per process.

>>> with Pipeline() as p:
...     report = p.ingest(["docs/"], progress=print)
...     hits = p.search("protein folding", k=5, filters=SearchFilters(doc_types=("pdf",)))
...     bulk = p.ingest(["corpus/"], workers=2)  # two embedding processes; the same points as workers=1

Thread safety: one Pipeline may be shared by many threads (app sessions).  Searches and listings run
concurrently; ingest, delete and reindex are serialised; a reindex switches the active collection under an
exclusive lock, so a search sees either the old complete index or the new complete one.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .bulk import ingest_with_workers
from .chunking import rebuild_page
from .encoders import Encoders
from .extract import Extracted
from .files import FileStore, Source, expand, sha256
from .ingest import DocumentWriter, StoreFailure, commit, prepare
from .results import (
    DocumentFile,
    DocumentInfo,
    FileStatus,
    Hit,
    IngestReport,
    ProgressEvent,
    SearchFilters,
    Stats,
    Upload,
)
from .rwlock import RWLock
from .schema import CHUNK, DOC_RECORDS, META_ID, VISIBLE, WRITING, IndexSpec, collection_spec, record_id
from .search import merge_text, neighbour_hits, run_search
from .settings import IndexerSettings
from .store import Collection, Match, PointRecord, Root, StoreError, StoreLockedError, open_root, scroll_all
from .workers import WorkersUnavailable

__all__ = ["DocumentFile", "DocumentInfo", "FileStatus", "Hit", "IndexerError", "IngestReport", "Pipeline",
           "ProgressEvent", "SearchFilters", "Stats", "StoreError", "StoreLockedError", "Upload"]
log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
MIME = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "html": "text/html",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
DOC_ID = re.compile(r"[0-9a-f]{64}")


class IndexerError(RuntimeError):
    """The request cannot be served as things stand (e.g. the index needs a reindex); the message says why."""


@dataclass
class _Active:
    collection: Collection
    spec: IndexSpec
    encoders: Encoders | None  # None: the model that built this index cannot be loaded (reindex needed)


class Pipeline:
    def __init__(self, settings: IndexerSettings | None = None, *, embedder=None, root: Root | None = None):
        self.settings = settings or IndexerSettings.from_env()
        self.root = root if root is not None else open_root(self.settings)
        self._write = threading.RLock()  # one ingest / delete / reindex at a time
        self._swap = RWLock()  # readers: searches; writer: switching the active collection, close
        self._closed = False
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

    def _writer(self, active: _Active) -> DocumentWriter:
        return DocumentWriter(active.collection, self._usable(active), self.files, self.settings.batch_size)

    # --- ingest ----------------------------------------------------------------------------------------
    def ingest(self, items: Iterable[str | os.PathLike | Upload | tuple[str, bytes]] | str | os.PathLike | Upload,
               progress: Progress | None = None, workers: int = 1) -> IngestReport:
        """Index files, folders (recursive) and uploads; one status per file, never stops on a bad file.
        ``workers`` > 1 embeds in that many worker processes (bulk ingest, see ``bulk.py``); same results."""
        if isinstance(items, str | os.PathLike | Upload) or (
                isinstance(items, tuple) and len(items) == 2 and isinstance(items[1], bytes | bytearray)):
            items = [items]
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        t0 = time.perf_counter()
        notify = progress or (lambda event: None)
        with self._write:
            active = self._current()
            writer = self._writer(active)
            sources = expand(items)
            keep, max_bytes = self.settings.keep_files, self.settings.max_file_bytes
            if workers > 1 and sources:
                try:
                    statuses, store_error = ingest_with_workers(writer, sources, workers, keep, max_bytes, notify)
                except WorkersUnavailable as exc:
                    raise IndexerError(str(exc)) from exc
            else:
                statuses, store_error = self._ingest_here(writer, sources, notify)
            if store_error is None and any(s.status == "ok" for s in statuses):
                self._maybe_optimize(active.collection, notify)
        return IngestReport(tuple(statuses), time.perf_counter() - t0, store_error)

    def _ingest_here(self, writer: DocumentWriter, sources: list[Source], notify: Progress
                     ) -> tuple[list[FileStatus], str | None]:
        """The one-process path (``workers=1``)."""
        statuses: list[FileStatus] = []
        store_error = None
        max_bytes = self.settings.max_file_bytes
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="moesearch-read") as reader:
            # the next file is read, extracted and chunked (pure Python) while this one embeds (onnxruntime)
            ahead = reader.submit(prepare, writer, sources[0], max_bytes) if sources else None
            for i, source in enumerate(sources):
                current = ahead
                if i + 1 < len(sources) and store_error is None:
                    ahead = reader.submit(prepare, writer, sources[i + 1], max_bytes)
                if store_error is not None:
                    statuses.append(FileStatus(source.name, "failed", f"not attempted: the store failed "
                                               f"({store_error})", path=source.key))
                    continue

                def report(stage: str, done: int, total: int, i=i, source=source) -> None:
                    notify(ProgressEvent(stage, i, len(sources), source.name, done, total))

                report("read", 0, 0)
                try:
                    status = commit(writer, current.result(), self.settings.keep_files, report)
                except StoreFailure as exc:
                    store_error = str(exc)
                    status = FileStatus(source.name, "failed", f"store error: {exc}", path=source.key)
                except Exception as exc:  # e.g. the embedder failed on this file
                    log.exception("ingest of %s failed", source.key)
                    status = FileStatus(source.name, "failed", f"{type(exc).__name__}: {exc}", path=source.key)
                statuses.append(status)
                notify(ProgressEvent("done", i + 1, len(sources), source.name))
        return statuses, store_error

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
    def documents(self) -> list[DocumentInfo]:
        with self._swap.read():
            records = scroll_all(self._current().collection, DOC_RECORDS)
        docs = [DocumentInfo(doc_id=p["doc_id"], source=p["source"], path=p.get("path", ""),
                             doc_type=p.get("doc_type", ""), pages=int(p.get("pages", 0)),
                             chunks=int(p.get("chunks", 0)), ingested_at=p.get("ingested_at", ""),
                             size_bytes=int(p.get("size_bytes", 0)), model_id=p.get("model_id", ""),
                             notes=tuple(p.get("notes") or ()), kept_copy=bool(p.get("kept_copy")))
                for p in (r.payload for r in records)]
        return sorted(docs, key=lambda d: (d.source.lower(), d.ingested_at))

    def _resolve(self, collection: Collection, target: str) -> list[str]:
        target = target.strip()
        if DOC_ID.fullmatch(target):
            return [target] if collection.count([Match("doc_id", (target,))]) else []
        for key in ("path", "source"):
            values = (target, str(Path(target).expanduser().absolute())) if key == "path" else (target,)
            found = scroll_all(collection, [*DOC_RECORDS, Match(key, values)])
            if found:
                return [r.payload["doc_id"] for r in found]
        return []

    def delete(self, target: str) -> list[str]:
        """Delete documents by doc_id, path or file name; returns the doc_ids removed ([] if none matched)."""
        with self._write:
            active = self._current()
            writer = DocumentWriter(active.collection, active.encoders, self.files)
            doc_ids = self._resolve(active.collection, target)
            for doc_id in doc_ids:
                writer.delete(doc_id)
            return doc_ids

    def document_file(self, doc_id: str) -> DocumentFile:
        """The original bytes of an ingested document (kept copy, or the file at its path if unchanged)."""
        with self._swap.read():
            found = self._current().collection.retrieve([record_id(doc_id)])
        if not found:
            raise IndexerError(f"no document {doc_id!r}")
        p = found[0].payload
        data = self.files.get(doc_id) if DOC_ID.fullmatch(doc_id) else None
        path = p.get("path") or None
        if data is None and path and Path(path).is_file():
            candidate = Path(path).read_bytes()
            data = candidate if sha256(candidate) == doc_id else None
        if data is None:
            raise IndexerError(f"the original of {p['source']} is not available: no copy was kept and {path} has "
                               "changed or moved since it was ingested")
        return DocumentFile(p["source"], data, MIME.get(p.get("doc_type", ""), "application/octet-stream"), path)

    def stats(self) -> Stats:
        with self._swap.read():
            active = self._current()
            col = active.collection
            docs, chunks = col.count(DOC_RECORDS), col.count(VISIBLE)
            incomplete = col.count([Match("kind", (CHUNK,)), Match("state", (WRITING,))])
            store = self.root.info(col.name)
        return Stats(documents=docs, chunks=chunks, backend=self.root.kind, location=self.root.location,
                     collection=col.name, model_id=active.spec.model_id, dim=active.spec.dim,
                     configured_model_id=self.target.model_id, reindex_needed=not active.spec.same_index(self.target),
                     incomplete_chunks=incomplete,
                     extra={"chunk_tokens": active.spec.chunk_tokens, "chunk_overlap": active.spec.chunk_overlap,
                            "embedder_provider": getattr(self.embedder, "provider", ""),
                            "store": store})

    # --- reindex -------------------------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, force: bool = False) -> IngestReport:
        """Re-embed every document with the configured model into a new collection, then switch to it."""
        notify = progress or (lambda event: None)
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
                statuses = self._copy_documents(old.collection, DocumentWriter(new, encoders, self.files,
                                                                               self.settings.batch_size), notify)
                failed = [f"{f.name}: {f.reason}" for f in statuses if f.status == "failed"]
                if failed:  # switching now would lose these documents: keep the old index
                    raise IndexerError(f"reindex stopped, the index is unchanged: {len(failed)} document(s) could "
                                       f"not be rebuilt ({'; '.join(failed[:3])})")
                new.upsert([PointRecord(META_ID, self.target.to_payload("ready"))])
                self._maybe_optimize(new, notify)
            except BaseException:
                self.root.drop(name)
                raise
            with self._swap.write():
                self.root.activate(name)
                self._active = _Active(new, self.target, encoders)
                self.root.drop(old.collection.name)
        return IngestReport(tuple(statuses), time.perf_counter() - t0)

    def _copy_documents(self, old: Collection, writer: DocumentWriter, notify: Progress) -> list[FileStatus]:
        records = scroll_all(old, DOC_RECORDS)
        statuses = []
        for i, record in enumerate(records):
            p = record.payload
            t0 = time.perf_counter()
            pieces: dict[int, list[tuple[int, int, str]]] = {}
            for r in scroll_all(old, [*VISIBLE, Match("doc_id", (p["doc_id"],))]):
                pieces.setdefault(int(r.payload["page"]), []).append(
                    (int(r.payload["char_start"]), int(r.payload["char_end"]), r.payload["text"]))
            try:
                pages = [(page, rebuild_page(pieces[page])) for page in sorted(pieces)]
            except ValueError as exc:
                statuses.append(FileStatus(p["source"], "failed", f"stored chunks are damaged ({exc}); delete and "
                                           "ingest this file again", path=p.get("path", ""), doc_id=p["doc_id"]))
                continue
            extracted = Extracted(p.get("doc_type", "txt"), tuple(pages), int(p.get("pages", len(pages))),
                                  tuple(p.get("notes") or ()))
            chunks = writer.encoders.chunk(pages)
            source = Source(p["source"], p.get("path", p["source"]))
            writer.write(p["doc_id"], source, extracted, chunks, p.get("ingested_at", ""),
                         on_batch=lambda d, t, i=i, s=p["source"]: notify(ProgressEvent("embed", i, len(records), s,
                                                                                         d, t)),
                         record_extra={"size_bytes": int(p.get("size_bytes", 0)),
                                       "kept_copy": bool(p.get("kept_copy"))})
            statuses.append(FileStatus(p["source"], "ok", path=p.get("path", ""), doc_id=p["doc_id"],
                                       pages=extracted.page_count, chunks=len(chunks),
                                       seconds=time.perf_counter() - t0))
            notify(ProgressEvent("done", i + 1, len(records), p["source"]))
        return statuses
