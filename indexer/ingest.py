"""The ingest loop: for each source, in order, prepare -> embed -> commit, one status per file.

``prepare`` reads, identifies (sha256 of the bytes), looks up the document record once and, for new bytes,
extracts, chunks and batches; it never writes, so it may run ahead.  ``IngestLoop.commit`` writes the document
(``writer.py``) or settles it as a duplicate, then replaces older versions at its path.  The loop turns every
file problem into a failed status and never stops on one; a store failure fails that file and leaves the rest
"not attempted".  It remembers what this run wrote and removed, so a file with the same bytes as an earlier one
of the batch is a duplicate without asking the store again.

Where prepared files and their vectors come from is a ``Feed``: ``ReadAhead`` (below: the next file is prepared
in a reader thread while this one embeds in this process) or ``bulk.PoolFeed`` (embedding worker processes; for a
serving process's jobs, a lower-priority one kept warm, ``background.py``).  A reindex feeds the same loop sources
rebuilt from stored chunks (``reindex.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Protocol

import numpy as np

from embedder.settings import sha256

from .children import lower_priority
from .chunking import Chunk
from .diskspace import describe, disk_error
from .extract import Extracted, ExtractError, extract
from .files import Source, read_source
from .results import FileStatus, ProgressEvent
from .sandbox import Cancelled, ChunkPlan, FileCaps, Reader
from .schema import DOC_RECORDS
from .store.base import Match, scroll_all
from .writer import BatchVectors, Document, DocumentWriter, StoreFailure, batches

log = logging.getLogger(__name__)
Progress = Callable[[ProgressEvent], None]
Report = Callable[[str, int, int], None]  # (stage, done, total) for the file being settled
Read = Callable[[bytes, str, Callable[[int, int], None]], tuple[Extracted, list[Chunk]]]  # data, name, OCR progress
NOT_ATTEMPTED_CANCELLED = "not attempted: the ingest was cancelled"
MAX_COPIES = 1000  # "name (2).txt" ... "name (1000).txt"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Prepared:
    """A source read, identified, extracted and batched; nothing written yet.  ``status`` is set when the file
    is already settled (skipped / failed); ``existing`` is the store's record of these bytes when prepared."""

    source: Source
    t0: float
    status: FileStatus | None = None
    data: bytes | None = None
    doc_id: str | None = None
    existing: dict | None = None
    extracted: Extracted | None = None
    batches: tuple[tuple[Chunk, ...], ...] = ()

    @property
    def chunks(self) -> int:
        return sum(len(b) for b in self.batches)


def prepare(writer: DocumentWriter, source: Source, max_bytes: int, batch_size: int, read: Read | None = None,
            ocr: Callable[[int, int], None] | None = None) -> Prepared:
    """Read, identify, extract and batch one source (read-only: safe to run ahead of ``commit``).  ``read``
    extracts and chunks (default: in this process); ``ocr(done, total)`` hears of OCR pages.  File problems
    become a failed status; store problems raise StoreFailure; a cancelled read raises ``Cancelled``."""
    prep = Prepared(source, time.perf_counter())

    def settle(state: str, reason: str, **kw) -> Prepared:
        prep.status = FileStatus(source.name, state, reason, path=source.key,
                                 seconds=time.perf_counter() - prep.t0, **kw)
        return prep

    if source.skip:
        return settle("skipped", source.skip)
    stored = source.stored
    if stored is None:
        try:
            prep.data = read_source(source, max_bytes)
        except ExtractError as exc:
            return settle("failed", str(exc))
    prep.doc_id = stored.record["doc_id"] if stored is not None else sha256(prep.data)
    prep.existing = writer.record(prep.doc_id)
    if prep.existing is not None:
        return prep
    try:
        if stored is not None:
            prep.extracted = _rebuilt(stored)
            chunks = writer.encoders.chunk(prep.extracted.pages)
        elif read is not None:
            prep.extracted, chunks = read(prep.data, source.name, ocr)
        else:
            prep.extracted = extract(prep.data, source.name, progress=ocr)
            chunks = writer.encoders.chunk(prep.extracted.pages)
    except ExtractError as exc:
        return settle("failed", str(exc), doc_id=prep.doc_id)
    except Cancelled:
        raise
    except Exception as exc:  # a loader bug or a pathological file must not stop the batch
        log.exception("unexpected error reading %s", source.key)
        return settle("failed", f"could not read the file ({type(exc).__name__}: {exc})", doc_id=prep.doc_id)
    if not chunks:
        return settle("failed", "no text to index after extraction", doc_id=prep.doc_id)
    if source.original:
        prep.extracted = dataclasses.replace(prep.extracted, notes=(f"uploaded as {source.original!r}",
                                                                    *prep.extracted.notes))
    prep.batches = batches(chunks, batch_size)
    return prep


def _rebuilt(stored) -> Extracted:
    p = stored.record
    try:
        pages = stored.pages()
    except ValueError as exc:
        raise ExtractError(f"stored chunks are damaged ({exc}); delete and ingest this file again") from None
    numbers = {n for n, _ in pages}
    return Extracted(p.get("doc_type", "txt"), tuple(pages), int(p.get("pages", len(pages))),
                     tuple(p.get("notes") or ()), tuple(n for n in p.get("ocr_pages") or () if n in numbers))


@dataclass
class Entry:
    """One source on its way: prepared (or the error ``prepare`` raised) and where its vectors come from."""

    index: int
    source: Source
    prep: Prepared | None = None
    error: Exception | None = None  # re-raised when this file's turn comes, so errors stay in file order

    def vectors(self) -> BatchVectors | None:
        """Vectors of batch ``i`` of this file computed elsewhere (None: embed in this process)."""
        return None


class Feed(Protocol):
    """Hands the loop its sources prepared, in order, each with where its vectors come from."""

    def take(self, index: int) -> Entry: ...  # entry ``index``; entries are taken in order, each once

    def recover(self, entry: Entry, exc: Exception) -> Entry | str | None: ...  # after a failed write

    def settled(self, entry: Entry) -> None: ...

    def close(self) -> None: ...


FeedFor = Callable[["IngestLoop", Sequence[Source]], Feed]  # a feed for this loop over these sources


class IngestLoop:
    """prepare -> embed -> commit over ``sources`` with the statuses and the store error (if any) it ends with."""

    def __init__(self, writer: DocumentWriter, keep: str, max_bytes: int, batch_size: int, notify: Progress, *,
                 caps: FileCaps | None = None, cancel: threading.Event | None = None, replace: bool = False,
                 reader: Reader | None = None, nice: int = 0):
        """``caps``: read each new file in a reader process under these limits (``sandbox.py``; None: in this
        process, with the environment's limits).  ``cancel``: once set, the file in progress is rolled back and
        the rest are not attempted.  ``replace``: an upload under a name already indexed replaces that document
        (default: both are kept, the new one as ``name (2).ext``).  ``nice``: the reader process runs that much
        nicer than this one (a serving process's job, ``background.py``)."""
        self.writer = writer
        self.keep = keep
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.notify = notify
        self.caps = caps
        self.cancel = cancel or threading.Event()
        self.replace = replace
        self.reader = reader if reader is not None or caps is None else Reader.shared()
        self.nice = nice
        self.total = 0
        self._seen: dict[str, dict | None] = {}  # doc_id -> record this run wrote, or None: this run removed it
        self._keys: dict[str, str] = {}  # upload name -> doc_id written under it by this run

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def _read(self, data: bytes, name: str, ocr) -> tuple[Extracted, list[Chunk]]:
        if self.nice:  # (re)started now if it is not running, so its priority is lowered before it reads
            self.reader.start()
            if (pid := self.reader.pid) is not None:
                lower_priority(pid, self.nice)
        return self.reader.read(data, name, self.caps, ChunkPlan.of(self.writer.encoders), ocr, self.cancel)

    def prepare(self, source: Source, index: int = 0) -> Prepared:
        def ocr(done: int, total: int) -> None:
            self.notify(ProgressEvent("ocr", index, self.total, source.name, done, total))

        if self.cancelled and source.stored is None:
            raise Cancelled(NOT_ATTEMPTED_CANCELLED)
        read = self._read if self.caps is not None else None
        return prepare(self.writer, source, self.max_bytes, self.batch_size, read, ocr)

    def here(self, index: int, texts: Sequence[str]) -> np.ndarray:
        """Vectors computed in this process (batch ``index`` of the file being written)."""
        return self.writer.encoders.embed_documents(texts, self.batch_size)  # (b, D)

    def run(self, sources: Sequence[Source], feed: Feed) -> tuple[list[FileStatus], str | None]:
        statuses: list[FileStatus] = []
        store_error = None
        total = self.total = len(sources)
        try:
            for i, source in enumerate(sources):
                if store_error is not None:
                    statuses.append(FileStatus(source.name, "failed", f"not attempted: the store failed "
                                               f"({store_error})", path=source.key))
                    continue
                if self.cancelled:
                    statuses.append(FileStatus(source.name, "skipped", NOT_ATTEMPTED_CANCELLED, path=source.key))
                    continue

                def report(stage: str, done: int, n: int, i=i, source=source) -> None:
                    self.notify(ProgressEvent(stage, i, total, source.name, done, n))

                report("read", 0, 0)
                status, store_error = self._settle(feed, feed.take(i), report)
                statuses.append(status)
                self.notify(ProgressEvent("done", i + 1, total, source.name))
        finally:
            feed.close()
        return statuses, store_error

    def _settle(self, feed: Feed, entry: Entry, report: Report) -> tuple[FileStatus, str | None]:
        source = entry.source
        try:
            while True:
                try:
                    if entry.error is not None:
                        raise entry.error
                    return self.commit(entry.prep, report, entry.vectors()), None
                except Cancelled:
                    return FileStatus(source.name, "skipped", NOT_ATTEMPTED_CANCELLED, path=source.key), None
                except StoreFailure as exc:
                    if (disk := disk_error(exc)) is not None:
                        exc = describe(disk)
                    return FileStatus(source.name, "failed", f"store error: {exc}", path=source.key), str(exc)
                except Exception as exc:
                    if (disk := disk_error(exc)) is not None:  # e.g. the kept copy: stop, the next would fail too
                        return FileStatus(source.name, "failed", f"disk error: {describe(disk)}",
                                          path=source.key), describe(disk)
                    outcome = feed.recover(entry, exc)
                    if isinstance(outcome, Entry):  # the feed tries this file again
                        entry = outcome
                        continue
                    if outcome is None:  # e.g. the embedder failed on this file
                        log.exception("ingest of %s failed", source.key)
                        outcome = f"{type(exc).__name__}: {exc}"
                    return FileStatus(source.name, "failed", outcome, path=source.key), None
        finally:
            feed.settled(entry)

    def commit(self, prep: Prepared, report: Report, vectors: BatchVectors | None = None) -> FileStatus:
        """Write a prepared document (or settle it as a duplicate) and replace older versions at its path (a
        file's own path; an upload's name only when ``replace``, else a new upload is kept under a free name)."""
        if prep.status is not None:
            return prep.status
        source, doc_id = prep.source, prep.doc_id
        existing = self._seen[doc_id] if doc_id in self._seen else prep.existing
        if existing is None and prep.extracted is None:  # known when prepared, removed by this run since
            return self.commit(self.prepare(source), report)
        reason = ""
        if existing is None:
            if source.is_upload and not self.replace:
                source, reason = self._free_name(source, doc_id)
            stored = source.stored.record if source.stored is not None else None
            doc = Document(doc_id, source, prep.extracted, prep.batches,
                           ingested_at=stored.get("ingested_at", "") if stored else now_iso(),
                           size_bytes=int(stored.get("size_bytes", 0)) if stored else len(prep.data),
                           data=prep.data, kept_copy=bool(stored and stored.get("kept_copy")))
            keep_copy = self.keep == "all" or (self.keep == "uploads" and source.is_upload)

            def on_batch(done: int, n: int) -> None:
                report("embed", done, n)
                if self.cancelled:
                    raise Cancelled("cancelled while writing")

            try:
                self._seen[doc_id] = self.writer.write(doc, vectors or self.here, keep_copy, on_batch=on_batch)
            except Cancelled:  # roll back: this document has no record yet, so its chunks were never visible
                self.writer.delete(doc_id)
                raise
            if source.is_upload:
                self._keys[source.key] = doc_id
        replaced = ()
        if source.stored is None and (not source.is_upload or self.replace):
            replaced = tuple(self.writer.replace_older(source.key, doc_id))
            self._seen.update(dict.fromkeys(replaced))
            if replaced and source.is_upload:
                reason = f"replaced the earlier {source.name}"

        def status(state: str, reason: str = "", **kw) -> FileStatus:
            return FileStatus(source.name, state, reason, path=source.key, doc_id=doc_id, replaced=replaced,
                              seconds=time.perf_counter() - prep.t0, **kw)

        if existing is None:
            return status("ok", reason, pages=prep.extracted.page_count, chunks=prep.chunks,
                          notes=prep.extracted.notes)
        same = existing.get("path") == source.key
        where = f"{existing.get('source')} ({existing.get('path')})"
        reason = "unchanged: already indexed" if same else f"same content already indexed as {where}"
        return status("duplicate", reason, pages=int(existing.get("pages", 0)), chunks=int(existing.get("chunks", 0)))

    def _taken(self, key: str, doc_id: str) -> bool:
        """Whether another document is indexed under the upload name ``key`` (by this run or before it)."""
        if key in self._keys:
            return self._keys[key] != doc_id
        found = scroll_all(self.writer.collection, [*DOC_RECORDS, Match("path", (key,))])
        return any(r.payload.get("doc_id") != doc_id for r in found)

    def _free_name(self, source: Source, doc_id: str) -> tuple[Source, str]:
        """The upload under its own name, or ``name (2).ext`` ... when a different document has that name."""
        try:
            if not self._taken(source.key, doc_id):
                return source, ""
            name = PurePath(source.name)
            for n in range(2, MAX_COPIES + 1):
                candidate = f"{name.stem} ({n}){name.suffix}"
                if not self._taken(candidate, doc_id):
                    return (dataclasses.replace(source, name=candidate, key=candidate),
                            f"kept both: a different {source.name} is indexed, this one is {candidate}")
        except Exception as exc:
            raise StoreFailure(str(exc)) from exc
        raise ExtractError(f"{MAX_COPIES} different files named {source.name} are indexed; rename this one")


class ReadAhead:
    """The one-process feed: the next source is read, extracted and chunked (pure Python) in a reader thread
    while this one embeds (onnxruntime) in the calling thread."""

    def __init__(self, loop: IngestLoop, sources: Sequence[Source]):
        self.loop = loop
        self.sources = sources
        if sources and loop.reader is not None:  # spawned here, not on the read thread (Reader.start)
            with contextlib.suppress(ExtractError):  # then each file fails alone, with the reason
                loop.reader.start()
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moesearch-read")
        self._ahead: dict[int, object] = {}

    def _submit(self, index: int) -> None:
        if index < len(self.sources) and index not in self._ahead:
            self._ahead[index] = self._reader.submit(self.loop.prepare, self.sources[index], index)

    def take(self, index: int) -> Entry:
        self._submit(index)
        self._submit(index + 1)
        entry = Entry(index, self.sources[index])
        try:
            entry.prep = self._ahead.pop(index).result()
        except Exception as exc:  # a store failure (or a bug) while preparing: settled by the loop
            entry.error = exc
        return entry

    def recover(self, entry: Entry, exc: Exception) -> Entry | str | None:
        return None

    def settled(self, entry: Entry) -> None:
        pass

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)
