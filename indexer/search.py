"""Queries -> hits: dense, keyword (BM25) or hybrid (both, fused with RRF), each hit with the dense cosine of the
query and its chunk where the query was embedded; hits grouped into one result per document; neighbouring chunks,
and the documents nearest a document by their similarity vectors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .chunking import rebuild_page
from .encoders import Encoders
from .results import DocumentHits, Hit, IndexerError, SearchFilters, SimilarDocument
from .schema import DOC_RECORDS, VISIBLE, IndexSpec, record_id
from .store.base import DENSE, MODES, SIMILAR, Collection, Match, QuerySpec, Range, Record, SparseVec, scroll_all

MAX_K = 1000
# A contents entry: a title, a leader (written "…" by the loaders, ``loaders.base.LEADER``; dots in an index built
# before that) and a page number.  A passage of such lines is a contents page (or an index of that shape).
CONTENTS_ENTRY = re.compile(r"^\S.*?\s*(?:\u2026|(?:\.\s?){5,})\s*(?:\d+|[ivxlcdm]+)$", re.IGNORECASE)
CONTENTS_MIN_ENTRIES = 3  # ... and at least this share of its lines:
CONTENTS_MIN_SHARE = 0.4
CONTENTS_LOOKAHEAD = 10  # hits fetched beyond k, among which a document's own section may be found


def to_hit(record: Record, encoders: Encoders | None = None, query: SparseVec | None = None) -> Hit:
    p = record.payload
    text = p.get("text", "")
    terms = encoders.bm25.matched_terms(query, text) if encoders is not None and query is not None else ()
    return Hit(text=text, source=p.get("source", ""), page=int(p.get("page", 1)), score=record.score,
               matched_terms=terms, doc_id=p.get("doc_id", ""), chunk_index=int(p.get("chunk_index", 0)),
               path=p.get("path", ""), doc_type=p.get("doc_type", ""), char_start=int(p.get("char_start", 0)),
               char_end=int(p.get("char_end", 0)), ingested_at=p.get("ingested_at", ""), id=record.id,
               ocr=p.get("ocr") is True)


def check_query(query: str, k: int, mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int in 1..{MAX_K}, got {k!r}")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty")
    return query.strip()


def run_search(collection: Collection, encoders: Encoders, query: str, k: int, filters: SearchFilters | None,
               mode: str, prefetch: int, rrf_k: int, hnsw_ef: int | None) -> list[Hit]:
    query = check_query(query, k, mode)
    where = (*VISIBLE, *(filters.conditions() if filters else ()))
    sparse = encoders.sparse_query(query) if mode in ("hybrid", "keyword") else None
    if sparse is not None and not len(sparse):
        sparse = None  # only stop words: nothing for BM25 to match
        if mode == "keyword":
            return []
    dense = encoders.embed_query(query) if mode in ("hybrid", "dense") else None  # (D,)
    limit = min(MAX_K, k + CONTENTS_LOOKAHEAD)  # (a fixed lookahead: a search for many hits costs no more)
    spec = QuerySpec(limit=limit, dense=dense, sparse=sparse, where=where, prefetch=max(prefetch, limit),
                     rrf_k=rrf_k, hnsw_ef=hnsw_ef)
    terms = sparse if sparse is not None else encoders.sparse_query(query)
    records = collection.query(spec)
    hits = [to_hit(r) for r in records]
    if sparse is None and dense is not None:  # dense search: the store's score is the cosine
        hits = [replace(h, similarity=float(r.score)) for h, r in zip(hits, records, strict=True)]
    hits = [replace(h, matched_terms=encoders.bm25.matched_terms(terms, h.text)) for h in contents_last(hits)[:k]]
    if dense is None or sparse is None:
        return hits
    return with_similarity(collection, hits, dense)


def is_contents(text: str) -> bool:
    """The passage is mostly contents entries ("2.5 Memory management … 5")."""
    if "\u2026" not in text and "....." not in text and ". . . . ." not in text:
        return False  # no leader at all (most passages): no line to look at
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    entries = sum(1 for line in lines if CONTENTS_ENTRY.match(line))
    return entries >= CONTENTS_MIN_ENTRIES and entries >= CONTENTS_MIN_SHARE * len(lines)


def contents_last(hits: Sequence[Hit]) -> list[Hit]:
    """Each document's contents-page passages moved after its other passages: an entry points at its section, and
    where the section is among the hits it is the passage to show (``bench/toc_passages.py``).  The documents keep
    their places: a document's passages are reordered among the positions its hits held."""
    places: dict[str, list[int]] = {}
    for i, hit in enumerate(hits):
        places.setdefault(hit.doc_id, []).append(i)
    out = list(hits)
    for positions in places.values():
        mine = [hits[i] for i in positions]
        flags = [is_contents(h.text) for h in mine]
        if any(flags) and not all(flags):
            ordered = [h for h, f in zip(mine, flags, strict=True) if not f] + \
                      [h for h, f in zip(mine, flags, strict=True) if f]
            for i, hit in zip(positions, ordered, strict=True):
                out[i] = hit
    return out


def with_similarity(collection: Collection, hits: list[Hit], query: np.ndarray) -> list[Hit]:
    """``hits`` with ``similarity``: the cosine of ``query`` (D,) and each hit's stored dense vector (the float32
    original), for a ranking (RRF) whose scores are not cosines."""
    if not hits:
        return hits
    vectors = {r.id: r.vectors.get(DENSE) for r in collection.retrieve([h.id for h in hits], vectors=(DENSE,))}
    q = np.asarray(query, dtype=np.float32)
    q = q / (np.linalg.norm(q) or 1.0)
    out = []
    for h in hits:
        v = vectors.get(h.id)
        sim = None if v is None else float(v @ q / (np.linalg.norm(v) or 1.0))
        out.append(replace(h, similarity=sim))
    return out


def group_by_document(hits: Sequence[Hit], passages: int = 3, limit: int | None = None) -> list[DocumentHits]:
    """One result per document, in the order of each document's best hit in ``hits`` (which are best first), with
    its best ``passages`` hits (best first) and how many of its hits there were; at most ``limit`` documents."""
    if passages < 1:
        raise ValueError(f"passages must be >= 1, got {passages}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.doc_id, []).append(hit)
    docs = list(groups.values())[:limit]
    return [DocumentHits(doc_id=group[0].doc_id, source=group[0].source, doc_type=group[0].doc_type,
                         hits=tuple(group[:passages]), matched=len(group)) for group in docs]


def neighbour_hits(collection: Collection, hit: Hit, before: int, after: int, encoders: Encoders | None = None,
                   query: str | None = None) -> list[Hit]:
    """The hit's chunk with up to ``before`` chunks before it and ``after`` after it, in document order."""
    if before < 0 or after < 0:
        raise ValueError("before and after must be >= 0")
    where = [*VISIBLE, Match("doc_id", (hit.doc_id,)),
             Range("chunk_index", gte=max(0, hit.chunk_index - before), lte=hit.chunk_index + after)]
    sparse = encoders.sparse_query(query) if encoders is not None and query else None
    records = scroll_all(collection, where)
    hits = [to_hit(r, encoders, sparse) for r in records]
    return sorted(hits, key=lambda h: h.chunk_index)


def similar_documents(collection: Collection, spec: IndexSpec, doc_id: str, k: int) -> list[SimilarDocument]:
    """The ``k`` documents nearest ``doc_id`` by their similarity vectors (``symmetric`` task embeddings, or the
    mean of the chunks' search vectors for a model without that task), best first, the document itself left out."""
    from .catalog import document_info

    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int in 1..{MAX_K}, got {k!r}")
    if not spec.similar:
        raise IndexerError("this index was built before documents had similarity vectors: run "
                           "`python -m indexer reindex` to add them")
    found = collection.retrieve([record_id(doc_id)], vectors=(SIMILAR,))
    if not found:
        raise IndexerError(f"no document {doc_id!r} in the index")
    vec = found[0].vectors.get(SIMILAR)
    if vec is None:
        raise IndexerError(f"document {doc_id!r} has no similarity vector (it has no text); nothing to compare")
    records = collection.query(QuerySpec(limit=k + 1, dense=vec, using=SIMILAR, where=DOC_RECORDS))
    return [SimilarDocument(document_info(r.payload), r.score) for r in records
            if r.payload.get("doc_id") != doc_id][:k]


def merge_text(hits: Sequence[Hit]) -> str:
    """One passage from chunks of one document: overlaps removed using the char offsets, pages separated by a
    blank line, and ``[...]`` where chunks are not contiguous."""
    out: list[str] = []
    ordered = sorted(hits, key=lambda h: (h.doc_id, h.chunk_index))
    group: list[Hit] = []

    def flush() -> None:
        if not group:
            return
        try:
            out.append(rebuild_page([(h.char_start, h.char_end, h.text) for h in group], whole=False))
        except ValueError:  # not contiguous
            out.append(" [...] ".join(h.text for h in group))
        group.clear()

    for h in ordered:
        if group and (h.doc_id != group[-1].doc_id or h.page != group[-1].page
                      or h.chunk_index != group[-1].chunk_index + 1):
            flush()
        group.append(h)
    flush()
    return "\n\n".join(text.strip() for text in out)
