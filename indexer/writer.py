"""Writing documents into a collection: identity, visibility, replace-on-change (the store side of ingest).

A document goes in as: chunks written batch by batch with ``state=writing`` (invisible to search) -> one
``set_payload(state=complete)`` over its chunks -> its manifest record (``kind=doc``) written last.  The record
is the commit point: a document without one is unfinished, and the next ingest of the same bytes clears its
leftovers and writes it again under the same deterministic ids, so a killed run resumes without duplicates.
Older versions under the same path are deleted only after the new version is complete.

The vectors of each batch come from a ``BatchVectors`` callable (``ingest.py`` decides where they are computed);
every store failure is raised as ``StoreFailure`` (not the file's fault).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedder.settings import sha256

from .chunking import Chunk
from .encoders import Encoders
from .extract import Extracted
from .files import FileStore, Source
from .schema import CHUNK, COMPLETE, DOC, DOC_RECORDS, WRITING, chunk_id, record_id
from .store.base import Collection, Match, PointRecord, scroll_all

BatchVectors = Callable[[int, Sequence[str]], np.ndarray]  # (batch index, its texts) -> (b, D) vectors


class StoreFailure(RuntimeError):
    """A store operation failed while writing a document (not the file's fault)."""


def batches(chunks: Sequence[Chunk], batch_size: int) -> tuple[tuple[Chunk, ...], ...]:
    """A document's chunks in the batches that are embedded and written together (decided once, in ``prepare``)."""
    return tuple(tuple(chunks[s:s + batch_size]) for s in range(0, len(chunks), batch_size))


@dataclass(frozen=True)
class Document:
    """What the writer stores for one document (its chunks already batched)."""

    doc_id: str
    source: Source
    extracted: Extracted
    batches: tuple[tuple[Chunk, ...], ...]
    ingested_at: str
    size_bytes: int
    data: bytes | None = None  # kept as a copy when ``keep_copy``
    kept_copy: bool = False  # a copy is kept already (reindex)

    @property
    def chunks(self) -> int:
        return sum(len(b) for b in self.batches)


def _store(call, *args):
    try:
        return call(*args)
    except Exception as exc:
        raise StoreFailure(str(exc)) from exc


class DocumentWriter:
    def __init__(self, collection: Collection, encoders: Encoders | None, files: FileStore | None):
        self.collection = collection
        self.encoders = encoders
        self.files = files

    def record(self, doc_id: str) -> dict | None:
        """The manifest record of ``doc_id`` (its payload), or None."""
        found = _store(self.collection.retrieve, [record_id(doc_id)])
        return found[0].payload if found else None

    def write(self, doc: Document, vectors: BatchVectors, keep_copy: bool = False,
              on_batch: Callable[[int, int], None] | None = None) -> dict:
        """Write one document (see module doc); returns its manifest record."""
        col, model_id = self.collection, self.encoders.spec.model_id
        mine = [Match("doc_id", (doc.doc_id,))]
        if _store(col.count, mine):  # leftovers of an interrupted attempt: no record, so never visible
            _store(col.delete, mine)
        base = {"kind": CHUNK, "state": WRITING, "doc_id": doc.doc_id, "source": doc.source.name,
                "path": doc.source.key, "doc_type": doc.extracted.doc_type, "ingested_at": doc.ingested_at,
                "model_id": model_id}
        done, total, ocr = 0, doc.chunks, set(doc.extracted.ocr_pages)
        texts, search_vectors = [], []  # for the document's similarity vector
        for i, batch in enumerate(doc.batches):
            dense = vectors(i, [c.text for c in batch])  # (b, D)
            if dense.shape[0] != len(batch):
                raise RuntimeError(f"got {dense.shape[0]} vectors for {len(batch)} chunks")
            texts.extend(c.text for c in batch)
            search_vectors.append(np.asarray(dense, dtype=np.float32))
            points = [PointRecord(chunk_id(doc.doc_id, c.index),
                                  dict(base, page=c.page, chunk_index=c.index, char_start=c.start, char_end=c.end,
                                       text=c.text, content_sha256=sha256(c.text.encode()), ocr=c.page in ocr),
                                  vec, self.encoders.sparse_document(c.text))
                      for c, vec in zip(batch, dense, strict=True)]
            _store(col.upsert, points)
            done += len(batch)
            if on_batch:
                on_batch(done, total)
        kept = doc.kept_copy
        if keep_copy and doc.data is not None and self.files is not None:
            self.files.put(doc.doc_id, doc.data)
            kept = True
        record = {"kind": DOC, "doc_id": doc.doc_id, "source": doc.source.name, "path": doc.source.key,
                  "doc_type": doc.extracted.doc_type, "pages": doc.extracted.page_count, "chunks": total,
                  "size_bytes": doc.size_bytes, "ingested_at": doc.ingested_at, "model_id": model_id,
                  "notes": list(doc.extracted.notes), "ocr_pages": list(doc.extracted.ocr_pages), "kept_copy": kept}
        similar = self.encoders.similarity_vector(texts, np.concatenate(search_vectors)) if texts else None
        _store(col.set_payload, [Match("kind", (CHUNK,)), *mine], {"state": COMPLETE})
        _store(col.upsert, [PointRecord(record_id(doc.doc_id), record, similar=similar)])
        return record

    def delete(self, doc_id: str) -> None:
        """Remove a document's chunks and record in one operation, then its kept copy."""
        self.collection.delete([Match("doc_id", (doc_id,))])
        if self.files is not None:
            self.files.delete(doc_id)

    def replace_older(self, key: str, keep: str) -> list[str]:
        """Delete other versions stored under the same path ``key``; returns their doc_ids."""
        older = [r.payload["doc_id"]
                 for r in _store(scroll_all, self.collection, [*DOC_RECORDS, Match("path", (key,))])
                 if r.payload.get("doc_id") != keep]
        for doc_id in older:
            _store(self.delete, doc_id)
        return older
