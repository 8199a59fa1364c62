"""Reindex: rebuild every document of the serving collection into a new one while the old one keeps serving, then
let the pipeline switch over in one step.

Sources.  Every document of a collection becomes a ``Source`` rebuilt from its stored chunks (``Source.stored``):
same doc_id, name, path, ingest date, size and kept copy; the page texts come back from the chunks' character
spans (``chunking.rebuild_page``), so no original file is needed.  They go through the one ingest loop
(``ingest.IngestLoop``) like any other source, embedded by the new model.

Catching up (``Rebuild``).  A pass compares the two collections' document records: documents missing from the new
collection (or whose record changed: same bytes ingested again under another name) are rebuilt into it, documents
the old one no longer has are removed from it.  Passes run without the pipeline's write lock, so ingest and delete
go on in the serving collection meanwhile; each pass picks up what changed during the previous one.  The last pass
runs under the write lock (nothing can change then), directly before the switch, so whatever was ingested or
deleted during the reindex is in the new collection exactly once.  The same comparison resumes a reindex that was
killed (the half-built collection is kept and found again by its name) and makes a rollback cheap: the previous
collection, kept after a switch, is brought up to date instead of being rebuilt.

Collections are labelled by their metadata point: ``building`` until the last pass is done, ``ready`` after.

Cancelling (``cancel``, an Event: the app's Cancel button, Ctrl-C in the CLI) stops the pass after the document in
progress, which is rolled back like a cancelled ingest; the half-built collection is kept (``building``) and the
next reindex with the same model continues from it; the serving index is untouched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from .chunking import rebuild_page
from .encoders import Encoders
from .files import Source, Stored
from .ingest import FeedFor, IngestLoop, ReadAhead
from .results import FileStatus, IndexerError
from .schema import DOC_RECORDS, META_ID, VISIBLE, IndexSpec
from .store.base import Collection, Match, scroll_all
from .writer import DocumentWriter

log = logging.getLogger(__name__)
BUILDING, READY = "building", "ready"  # a collection's state in its metadata point
CATCH_UP_PASSES = 3  # passes without the write lock before the last one under it


class ReindexCancelled(IndexerError):
    """The reindex was cancelled: the serving index is unchanged, what was rebuilt is kept for the next reindex."""


def stored_pages(collection: Collection, doc_id: str) -> list[tuple[int, str]]:
    """The page texts of a stored document, rebuilt from its visible chunks; ValueError on a missing chunk."""
    pieces: dict[int, list[tuple[int, int, str]]] = {}
    for r in scroll_all(collection, [*VISIBLE, Match("doc_id", (doc_id,))]):
        pieces.setdefault(int(r.payload["page"]), []).append(
            (int(r.payload["char_start"]), int(r.payload["char_end"]), r.payload["text"]))
    return [(page, rebuild_page(pieces[page])) for page in sorted(pieces)]


def _source(collection: Collection, record: dict) -> Source:
    return Source(record["source"], record.get("path") or record["source"],
                  stored=Stored(record, partial(stored_pages, collection, record["doc_id"])))


def spec_of(embedder, settings) -> IndexSpec:
    """The index spec an embedder builds under these settings, with its exact model version (and registry name)."""
    ref = getattr(embedder, "model_ref", None)
    return replace(Encoders.spec_for(embedder, settings), model_version=getattr(ref, "version", "") or "",
                   model_name=getattr(ref, "name", "") or "")


def read_meta(collection: Collection) -> tuple[IndexSpec | None, str]:
    """A collection's index spec and state (``building`` / ``ready``); (None, "") without moesearch metadata."""
    found = collection.retrieve([META_ID])
    if not found:
        return None, ""
    return IndexSpec.from_payload(found[0].payload), str(found[0].payload.get("state", ""))


def keep_after_switch(spec: IndexSpec) -> bool:
    """Whether the collection a reindex switched away from is kept for a rollback: yes when its model is a
    published version (``NAME@VERSION`` still names those exact weights), no for a plain model folder (it may have
    been retrained in place, so its old index could never be served correctly again)."""
    return bool(spec.model_name and spec.model_version)


def _key(record: dict) -> tuple:
    """What must agree between a document's records in the two collections for it to count as copied."""
    return (record.get("source"), record.get("path"), record.get("ingested_at"), record.get("size_bytes"),
            bool(record.get("kept_copy")))


class Rebuild:
    """Brings ``new`` in line with ``old`` in passes (see the module doc); ``loop()`` makes a fresh ingest loop
    that writes into ``new`` with the new model, ``feed`` where its vectors come from (default: this process)."""

    def __init__(self, old: Collection, new: Collection, encoders: Encoders, loop: Callable[[DocumentWriter],
                 IngestLoop], cancel: threading.Event | None = None, feed: FeedFor = ReadAhead):
        self.old, self.new = old, new
        self.cancel = cancel or threading.Event()
        self.writer = DocumentWriter(new, encoders, None)  # None: kept copies belong to the documents, not to us
        self._loop = loop
        self._feed = feed
        self.statuses: dict[str, FileStatus] = {}  # doc_id -> its latest status in this reindex

    def _plan(self) -> tuple[dict[str, dict], list[dict], list[str]]:
        have = {r.payload["doc_id"]: r.payload for r in scroll_all(self.old, DOC_RECORDS)}
        built = {r.payload["doc_id"]: r.payload for r in scroll_all(self.new, DOC_RECORDS)}
        remove = [d for d, rec in built.items() if d not in have or _key(rec) != _key(have[d])]
        gone = set(remove)
        add = [rec for d, rec in have.items() if d not in built or d in gone]
        return have, add, remove

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            have = sum(1 for _ in scroll_all(self.new, DOC_RECORDS))
            raise ReindexCancelled(f"reindex cancelled: the index is unchanged; {have} document(s) rebuilt so far "
                                   "are kept, and the next reindex with this model continues from them")

    def run_pass(self) -> tuple[int, list[FileStatus]]:
        """One pass: remove what the old collection lost, rebuild what it has and the new one lacks.  Returns the
        number of changes and this pass's failures."""
        self.check_cancelled()
        _, add, remove = self._plan()
        for doc_id in remove:
            self.writer.delete(doc_id)
            self.statuses.pop(doc_id, None)
        sources = [_source(self.old, rec) for rec in add]
        failed = []
        if sources:
            loop = self._loop(self.writer)
            statuses, store_error = loop.run(sources, self._feed(loop, sources))
            if store_error is not None:
                raise IndexerError(f"reindex stopped, the index is unchanged: the store failed ({store_error})")
            self.check_cancelled()  # the loop stopped after the document in progress
            for source, status in zip(sources, statuses, strict=True):
                self.statuses[source.stored.record["doc_id"]] = status
                if status.status == "failed":
                    failed.append(status)
        return len(remove) + len(sources), failed

    def catch_up(self, passes: int = CATCH_UP_PASSES) -> None:
        """Passes without the write lock until one finds nothing to do (at most ``passes``); failures are
        retried by the next pass (a document deleted meanwhile simply drops out)."""
        for _ in range(passes):
            changed, _failed = self.run_pass()
            if not changed:
                return

    def finish(self) -> list[FileStatus]:
        """The last pass (call it under the write lock): afterwards ``new`` holds exactly ``old``'s documents, or
        IndexerError says which could not be rebuilt.  Returns one status per document."""
        _, failed = self.run_pass()
        if failed:  # switching now would lose these documents: keep the old index
            raise IndexerError(f"reindex stopped, the index is unchanged: {len(failed)} document(s) could not be "
                               f"rebuilt ({'; '.join(f'{f.name}: {f.reason}' for f in failed[:3])})")
        have, add, remove = self._plan()
        if add or remove:
            raise IndexerError(f"reindex stopped, the index is unchanged: {len(add) + len(remove)} document(s) "
                               "differ after the last pass (another process writes to this store?)")
        out = []
        for doc_id, rec in sorted(have.items(), key=lambda kv: (kv[1].get("source", ""), kv[0])):
            out.append(self.statuses.get(doc_id) or FileStatus(
                rec.get("source", ""), "duplicate", "already in the new index (resumed, or kept from before)",
                path=rec.get("path", ""), doc_id=doc_id, pages=int(rec.get("pages", 0)),
                chunks=int(rec.get("chunks", 0))))
        return out
