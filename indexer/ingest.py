"""Writing documents into a collection: identity, batching, visibility, replace-on-change.

A document goes in as: chunks written in batches with ``state=writing`` (invisible to search) -> one
``set_payload(state=complete)`` over its chunks -> its manifest record (``kind=doc``) written last.  The record
is the commit point: a document without one is unfinished, and the next ingest of the same bytes clears its
leftovers and writes it again under the same deterministic ids, so a killed run resumes without duplicates.
Older versions under the same path are deleted only after the new version is complete.

Vectors come from the document writer's own encoders, or (bulk ingest, ``bulk.py``) from an ``embed`` callable
that hands back batch ``i`` of the document, embedded elsewhere from exactly the texts this module batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .chunking import Chunk
from .encoders import Encoders
from .extract import Extracted, ExtractError, extract
from .files import FileStore, Source, read_source, sha256
from .results import FileStatus, ProgressEvent
from .schema import CHUNK, COMPLETE, DOC, DOC_RECORDS, WRITING, chunk_id, record_id
from .store.base import Collection, Match, PointRecord, Record, scroll_all

log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
BatchVectors = Callable[[int, Sequence[str]], np.ndarray]  # (batch index, its texts) -> (b, D) vectors


class StoreFailure(RuntimeError):
    """A store operation failed while writing a document (not the file's fault)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DocumentWriter:
    def __init__(self, collection: Collection, encoders: Encoders, files: FileStore | None, batch_size: int = 32):
        self.collection = collection
        self.encoders = encoders
        self.files = files
        self.batch_size = batch_size

    # --- reading the store ------------------------------------------------------------------------
    def record(self, doc_id: str) -> Record | None:
        found = self.collection.retrieve([record_id(doc_id)])
        return found[0] if found else None

    def records(self) -> list[Record]:
        return scroll_all(self.collection, DOC_RECORDS)

    # --- writing ------------------------------------------------------------------------------------
    def write(self, doc_id: str, source: Source, extracted: Extracted, chunks: Sequence[Chunk], ingested_at: str,
              data: bytes | None = None, keep_copy: bool = False,
              on_batch: Callable[[int, int], None] | None = None, record_extra: dict | None = None,
              embed: BatchVectors | None = None) -> None:
        """Write one document (see module doc).  Store failures raise ``StoreFailure``; ``embed`` supplies the
        vectors of each batch (default: this writer's encoders)."""
        col = self.collection
        mine = [Match("doc_id", (doc_id,))]
        try:
            if col.count(mine):  # leftovers of an interrupted attempt: no record, so never visible
                col.delete(mine)
        except Exception as exc:
            raise StoreFailure(str(exc)) from exc
        base = {"kind": CHUNK, "state": WRITING, "doc_id": doc_id, "source": source.name, "path": source.key,
                "doc_type": extracted.doc_type, "ingested_at": ingested_at, "model_id": self.encoders.spec.model_id}
        n = len(chunks)
        for start in range(0, n, self.batch_size):
            batch = chunks[start:start + self.batch_size]
            texts = [c.text for c in batch]
            if embed is None:
                vectors = self.encoders.embed_documents(texts, self.batch_size)  # (b, D)
            else:
                vectors = embed(start // self.batch_size, texts)
            points = []
            for c, vec in zip(batch, vectors, strict=True):
                payload = dict(base, page=c.page, chunk_index=c.index, char_start=c.start, char_end=c.end,
                               text=c.text, content_sha256=sha256(c.text.encode()))
                points.append(PointRecord(chunk_id(doc_id, c.index), payload, vec,
                                          self.encoders.sparse_document(c.text)))
            try:
                col.upsert(points)
            except Exception as exc:
                raise StoreFailure(str(exc)) from exc
            if on_batch:
                on_batch(start + len(batch), n)
        kept = False
        if keep_copy and data is not None and self.files is not None:
            self.files.put(doc_id, data)
            kept = True
        record = {"kind": DOC, "doc_id": doc_id, "source": source.name, "path": source.key,
                  "doc_type": extracted.doc_type, "pages": extracted.page_count, "chunks": n,
                  "size_bytes": len(data) if data is not None else 0, "ingested_at": ingested_at,
                  "model_id": self.encoders.spec.model_id, "notes": list(extracted.notes), "kept_copy": kept,
                  **(record_extra or {})}
        try:
            col.set_payload([Match("kind", (CHUNK,)), *mine], {"state": COMPLETE})
            col.upsert([PointRecord(record_id(doc_id), record)])
        except Exception as exc:
            raise StoreFailure(str(exc)) from exc

    def delete(self, doc_id: str) -> None:
        """Remove a document's chunks and record in one operation, then its kept copy."""
        self.collection.delete([Match("doc_id", (doc_id,))])
        if self.files is not None:
            self.files.delete(doc_id)

    def replace_older(self, key: str, keep: str) -> list[str]:
        """Delete other versions stored under the same path ``key``; returns their doc_ids."""
        older = [r.payload["doc_id"] for r in scroll_all(self.collection, [*DOC_RECORDS, Match("path", (key,))])
                 if r.payload.get("doc_id") != keep]
        for doc_id in older:
            self.delete(doc_id)
        return older


@dataclass
class Prepared:
    """A source read, identified, extracted and chunked; nothing written yet.  ``status`` is set when the file
    is already settled (skipped / failed)."""

    source: Source
    t0: float
    status: FileStatus | None = None
    data: bytes | None = None
    doc_id: str | None = None
    known: bool = False  # the store already holds these bytes
    extracted: Extracted | None = None
    chunks: list[Chunk] | None = None


def prepare(writer: DocumentWriter, source: Source, max_bytes: int) -> Prepared:
    """Read, identify, extract and chunk one source (read-only: safe to run ahead of ``commit``).  File
    problems become a failed status; store problems raise StoreFailure."""
    prep = Prepared(source, time.perf_counter())

    def settle(state: str, reason: str, **kw) -> Prepared:
        prep.status = FileStatus(source.name, state, reason, path=source.key,
                                 seconds=time.perf_counter() - prep.t0, **kw)
        return prep

    if source.skip:
        return settle("skipped", source.skip)
    try:
        prep.data = read_source(source, max_bytes)
    except ExtractError as exc:
        return settle("failed", str(exc))
    prep.doc_id = sha256(prep.data)
    try:
        prep.known = writer.record(prep.doc_id) is not None
    except Exception as exc:
        raise StoreFailure(str(exc)) from exc
    if prep.known:
        return prep
    try:
        prep.extracted = extract(prep.data, source.name)
        prep.chunks = writer.encoders.chunk(prep.extracted.pages)
    except ExtractError as exc:
        return settle("failed", str(exc), doc_id=prep.doc_id)
    except Exception as exc:  # a loader bug or a pathological file must not stop the batch
        log.exception("unexpected error reading %s", source.key)
        return settle("failed", f"could not read the file ({type(exc).__name__}: {exc})", doc_id=prep.doc_id)
    if not prep.chunks:
        return settle("failed", "no text to index after extraction", doc_id=prep.doc_id)
    return prep


def batches(chunks: Sequence[Chunk], batch_size: int) -> list[list[str]]:
    """The chunk texts ``DocumentWriter.write`` embeds together, batch by batch."""
    return [[c.text for c in chunks[s:s + batch_size]] for s in range(0, len(chunks), batch_size)]


def commit(writer: DocumentWriter, prep: Prepared, keep: str, report: Callable[[str, int, int], None],
           embed: BatchVectors | None = None) -> FileStatus:
    """Write a prepared document (or settle it as a duplicate) and replace older versions at its path;
    ``embed`` as in ``DocumentWriter.write``."""
    source = prep.source
    if prep.status is not None:
        return prep.status

    def status(state: str, reason: str = "", **kw) -> FileStatus:
        return FileStatus(source.name, state, reason, path=source.key, seconds=time.perf_counter() - prep.t0, **kw)

    try:
        existing = writer.record(prep.doc_id)  # again: an earlier file of this batch may have had the same bytes
    except Exception as exc:
        raise StoreFailure(str(exc)) from exc
    if existing is None and prep.known:
        return commit(writer, prepare(writer, source, len(prep.data)), keep, report)  # deleted meanwhile
    if existing is None:
        keep_copy = keep == "all" or (keep == "uploads" and source.is_upload)
        writer.write(prep.doc_id, source, prep.extracted, prep.chunks, now_iso(), prep.data, keep_copy,
                     on_batch=lambda done, total: report("embed", done, total), embed=embed)
    try:
        replaced = tuple(writer.replace_older(source.key, prep.doc_id))
    except Exception as exc:
        raise StoreFailure(str(exc)) from exc
    if existing is None:
        return status("ok", doc_id=prep.doc_id, pages=prep.extracted.page_count, chunks=len(prep.chunks),
                      notes=prep.extracted.notes, replaced=replaced)
    same = existing.payload.get("path") == source.key
    where = f"{existing.payload.get('source')} ({existing.payload.get('path')})"
    reason = "unchanged: already indexed" if same else f"same content already indexed as {where}"
    return status("duplicate", reason, doc_id=prep.doc_id, pages=int(existing.payload.get("pages", 0)),
                  chunks=int(existing.payload.get("chunks", 0)), replaced=replaced)
