"""Reindex sources: every document of a collection as a ``Source`` rebuilt from its stored chunks.

The ingest loop re-chunks and re-embeds them into a new collection like any other source (``Source.stored``):
same doc_id, name, path, ingest date, size and kept copy; the page texts come back from the chunks' character
spans (``chunking.rebuild_page``), so no original file is needed.
"""

from __future__ import annotations

from functools import partial

from .chunking import rebuild_page
from .files import Source, Stored
from .schema import DOC_RECORDS, VISIBLE
from .store.base import Collection, Match, scroll_all


def stored_pages(collection: Collection, doc_id: str) -> list[tuple[int, str]]:
    """The page texts of a stored document, rebuilt from its visible chunks; ValueError on a missing chunk."""
    pieces: dict[int, list[tuple[int, int, str]]] = {}
    for r in scroll_all(collection, [*VISIBLE, Match("doc_id", (doc_id,))]):
        pieces.setdefault(int(r.payload["page"]), []).append(
            (int(r.payload["char_start"]), int(r.payload["char_end"]), r.payload["text"]))
    return [(page, rebuild_page(pieces[page])) for page in sorted(pieces)]


def stored_sources(collection: Collection) -> list[Source]:
    """One source per document record of ``collection`` (pages are rebuilt when the loop prepares it)."""
    out = []
    for record in scroll_all(collection, DOC_RECORDS):
        p = record.payload
        out.append(Source(p["source"], p.get("path") or p["source"],
                          stored=Stored(p, partial(stored_pages, collection, p["doc_id"]))))
    return out
