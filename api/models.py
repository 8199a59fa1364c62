"""The API's request and response bodies (pydantic; they are the OpenAPI schema clients and tests read)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from indexer import DocumentInfo, Hit, Relevance

Mode = Literal["hybrid", "dense", "keyword"]
MAX_K = 1000  # the indexer's cap on hits per search (indexer.search.MAX_K)
MAX_TEXT = 4096  # characters of a query, a path, a delete target
DOC_ID = r"^[0-9a-f]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def mirror(name: str, record: type, doc: str, **extra) -> type[BaseModel]:
    """The response model of an indexer record (a frozen dataclass): its fields and types, every one always sent,
    plus ``extra`` (``name=(type, Field(...))``); a field added to the record reaches the API without a copy here."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(record)}
    return create_model(name, __doc__=doc, **fields, **extra)


RelevanceOut = mirror("RelevanceOut", Relevance, "How good a match a hit is, as the search page labels it: level "
                      "strong | good | weak (below the model's 'no good match' threshold) | unknown (a model never "
                      "calibrated: the label is the cosine) | keyword (a keyword search: the label says words matched)")
HitOut = mirror("HitOut", Hit, "A passage found: one chunk of a document",
                file_url=(str, Field(description="the original's download link, at the hit's page (#page=N)")),
                relevance=(RelevanceOut, Field(description="the hit's relevance label, from its dense similarity")))


class DocumentGroup(BaseModel):
    doc_id: str
    source: str
    doc_type: str
    matched: int = Field(description="how many of the search's hits are this document's")
    hits: list[HitOut] = Field(description="its best passages, best first")


class SearchOut(BaseModel):
    query: str
    mode: Mode
    k: int
    took_ms: float
    good_match: bool = Field(description="false when the best hit's dense similarity is below the model's calibrated "
                             "'no good match' threshold: the hits are then no closer to the query than nonsense gets "
                             "(the search page shows 'No good match'); always true for keyword searches, a model "
                             "never calibrated, and no hits")
    no_match_below: float | None = Field(description="that threshold (MOESEARCH_MIN_SIMILARITY replaces it); null "
                                         "when the model was never calibrated")
    hits: list[HitOut]
    documents: list[DocumentGroup] | None = Field(None, description="with group=true: the hits grouped by document")


DocumentOut = mirror("DocumentOut", DocumentInfo, "An ingested document",
                     file_url=(str, Field(description="the original's download link")))


class DocumentList(BaseModel):
    total: int
    offset: int
    documents: list[DocumentOut]


class SimilarOut(BaseModel):
    score: float
    document: DocumentOut


class Facets(BaseModel):
    sources: list[str]
    doc_types: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    ready: bool
    pid: int
    uptime_s: float


class Ready(BaseModel):
    ready: bool


class FileReport(BaseModel):
    """One file's outcome: the structure `python -m indexer ingest --json` prints."""

    name: str
    status: Literal["ok", "duplicate", "skipped", "failed"]
    reason: str
    path: str
    doc_id: str | None
    pages: int
    chunks: int
    seconds: float
    notes: list[str]
    replaced: list[str]


class IngestReportOut(BaseModel):
    """The ingest report: the structure `python -m indexer ingest --json` prints."""

    ok: int
    duplicates: int
    skipped: int
    failed: int
    pages: int
    chunks: int
    seconds: float
    store_error: str | None
    files: list[FileReport]


class ProgressOut(BaseModel):
    """The last progress event of a job (``indexer.ProgressEvent``)."""

    stage: str
    files_done: int
    files_total: int
    source: str
    chunks_done: int
    chunks_total: int


class JobOut(BaseModel):
    id: str
    kind: Literal["ingest", "reindex"]
    label: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    fraction: float
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    report: IngestReportOut | None
    progress: ProgressOut | None
    error: str | None
    cancel_requested: bool


class PathsIn(Strict):
    paths: list[str] = Field(min_length=1, max_length=1000, description="files or folders (recursive) within "
                             "MOESEARCH_INGEST_ROOTS")


class FolderIn(Strict):
    path: str = Field(min_length=1, max_length=MAX_TEXT, description="a folder or file within MOESEARCH_INGEST_ROOTS")


class RemoveFolderIn(Strict):
    path: str = Field(min_length=1, max_length=MAX_TEXT)
    purge: bool = Field(False, description="also delete the folder's documents from the index")


class RescanIn(Strict):
    path: str | None = Field(None, min_length=1, max_length=MAX_TEXT, description="one synced folder (default: all)")


class DeleteIn(Strict):
    target: str = Field(min_length=1, max_length=MAX_TEXT, description="a doc_id, a path or a file name")


class Deleted(BaseModel):
    deleted: list[str]


class ReindexIn(Strict):
    force: bool = False
    model: str | None = Field(None, min_length=1, max_length=MAX_TEXT,
                              description="a model folder, a published NAME or NAME@VERSION (rollback)")


class FolderOut(BaseModel):
    path: str
    added_at: str
    last_sync: str | None
    last_error: str | None
    files: int
    indexed: int
    failed: int
    skipped: int
    failures: list[tuple[str, str]]
    last_report: dict[str, Any] | None


class FolderRemoved(BaseModel):
    path: str
    deleted: list[str]


class Rescan(BaseModel):
    requested: list[str]
