"""The documents of the active collection, for listing: their manifest records as ``DocumentInfo``.

The sorted list is kept between calls and read again from the store only after it changed: the pipeline calls
``changed()`` once per settled file, delete and reindex.  A Qdrant server may also be written by other processes
(the command line), so there the list is read again at least every ``ttl`` seconds.  Looking up the records of a
few documents (search hits) always asks the store.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from embedder.settings import sha256

from .files import FileStore
from .formats import mime_type
from .results import DocumentFile, DocumentInfo, Facets, IndexerError
from .schema import DOC_RECORDS, record_id
from .store.base import Collection, Match, scroll_all

DOC_ID = re.compile(r"[0-9a-f]{64}")


def document_info(p: dict) -> DocumentInfo:
    return DocumentInfo(doc_id=p["doc_id"], source=p["source"], path=p.get("path", ""),
                        doc_type=p.get("doc_type", ""), pages=int(p.get("pages", 0)), chunks=int(p.get("chunks", 0)),
                        ingested_at=p.get("ingested_at", ""), size_bytes=int(p.get("size_bytes", 0)),
                        model_id=p.get("model_id", ""), notes=tuple(p.get("notes") or ()),
                        kept_copy=bool(p.get("kept_copy")))


class Catalog:
    def __init__(self, ttl: float | None = None):
        self.ttl = ttl
        self._version = 0
        self._lock = threading.Lock()
        self._cached: tuple[tuple[str, int], float, tuple[DocumentInfo, ...]] | None = None

    def changed(self) -> None:
        with self._lock:
            self._version += 1

    def all(self, collection: Collection) -> tuple[DocumentInfo, ...]:
        """Every document, sorted by file name then ingest time."""
        with self._lock:
            key, cached = (collection.name, self._version), self._cached
        fresh = self.ttl is None or (cached is not None and time.monotonic() - cached[1] < self.ttl)
        if cached is not None and cached[0] == key and fresh:
            return cached[2]
        docs = tuple(sorted((document_info(r.payload) for r in scroll_all(collection, DOC_RECORDS)),
                            key=lambda d: (d.source.lower(), d.ingested_at)))
        with self._lock:
            self._cached = (key, time.monotonic(), docs)
        return docs

    def page(self, collection: Collection, offset: int = 0, limit: int | None = None) -> list[DocumentInfo]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"offset and limit must be >= 0, got {offset}, {limit}")
        docs = self.all(collection)
        return list(docs[offset:] if limit is None else docs[offset:offset + limit])

    def facets(self, collection: Collection) -> Facets:
        docs = self.all(collection)
        return Facets(tuple(sorted({d.source for d in docs}, key=str.lower)),
                      tuple(sorted({d.doc_type for d in docs if d.doc_type})))


def by_id(collection: Collection, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]:
    """The records of these documents (one store call); unknown ids are left out."""
    ids = list(dict.fromkeys(doc_ids))
    return {d.doc_id: d for d in (document_info(r.payload) for r in collection.retrieve([record_id(i) for i in ids]))}


def resolve(collection: Collection, target: str) -> list[str]:
    """doc_ids for a doc_id, a path or a file name ([] if none matches)."""
    target = target.strip()
    if DOC_ID.fullmatch(target):
        return [target] if collection.count([Match("doc_id", (target,))]) else []
    for key in ("path", "source"):
        values = (target, _absolute(target)) if key == "path" else (target,)
        found = scroll_all(collection, [*DOC_RECORDS, Match(key, values)])
        if found:
            return [r.payload["doc_id"] for r in found]
    return []


def _absolute(target: str) -> str:
    try:
        return str(Path(target).expanduser().absolute())
    except (RuntimeError, ValueError):  # '~nobody', a NUL byte: only the target as given can match
        return target


def document_file(collection: Collection, files: FileStore, doc_id: str) -> DocumentFile:
    """A lazy handle on a document's original: its kept copy, or the file at its path while it looks unchanged
    (same size; the content is checked against the doc_id when read)."""
    found = collection.retrieve([record_id(doc_id)]) if DOC_ID.fullmatch(doc_id) else []
    if not found:
        raise IndexerError(f"no document {doc_id!r}")
    p = found[0].payload
    name, path, size = p["source"], p.get("path") or None, int(p.get("size_bytes", 0))
    mime = mime_type(p.get("doc_type", ""), name)
    copy = files.find(doc_id)
    if copy is not None:
        return DocumentFile(name, mime, size, path, copy.read_bytes)
    original = Path(path) if path else None
    if original is None or not original.is_file() or (size and original.stat().st_size != size):
        raise IndexerError(f"the original of {name} is not available: no copy was kept and {path} has changed or "
                           "moved since it was ingested")

    def read() -> bytes:
        data = original.read_bytes()
        if sha256(data) != doc_id:
            raise IndexerError(f"the original of {name} is not available: {path} has changed since it was ingested")
        return data

    return DocumentFile(name, mime, size, path, read)
