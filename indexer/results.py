"""The value types the pipeline API takes and returns (frozen, JSON-able through ``to_dict``), and its error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time

from .formats import DOC_TYPES
from .store.base import Condition, Match, Range

STATUSES = ("ok", "duplicate", "skipped", "failed")
STAGES = ("read", "ocr", "embed", "index", "done")


class IndexerError(RuntimeError):
    """The request cannot be served as things stand (e.g. the index needs a reindex); the message says why."""


@dataclass(frozen=True)
class FileStatus:
    name: str  # file name (the `source` of its chunks)
    status: str  # ok | duplicate | skipped | failed
    reason: str = ""  # why it failed / was skipped, or what it duplicates
    path: str = ""
    doc_id: str | None = None
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()  # doc_ids of older versions removed

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class IngestReport:
    files: tuple[FileStatus, ...]
    seconds: float = 0.0
    store_error: str | None = None  # set when the store itself failed

    def _n(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> int:
        return self._n("ok")

    @property
    def duplicates(self) -> int:
        return self._n("duplicate")

    @property
    def skipped(self) -> int:
        return self._n("skipped")

    @property
    def failed(self) -> int:
        return self._n("failed")

    @property
    def pages(self) -> int:
        return sum(f.pages for f in self.files if f.status == "ok")

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status == "ok")

    @property
    def all_ok(self) -> bool:
        return self.failed == 0 and self.store_error is None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "duplicates": self.duplicates, "skipped": self.skipped, "failed": self.failed,
                "pages": self.pages, "chunks": self.chunks, "seconds": round(self.seconds, 3),
                "store_error": self.store_error, "files": [asdict(f) for f in self.files]}


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # read | ocr (chunks_* count pages read by OCR) | embed | index | done
    files_done: int
    files_total: int
    source: str = ""
    chunks_done: int = 0
    chunks_total: int = 0

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] (the current file counts by its share of chunks embedded)."""
        if self.files_total <= 0:
            return 1.0
        inner = self.chunks_done / self.chunks_total if self.chunks_total else 0.0
        return min(1.0, (self.files_done + inner) / self.files_total)

    @property
    def message(self) -> str:
        if self.stage == "embed":
            return f"{self.source}: embedded {self.chunks_done}/{self.chunks_total} chunks"
        if self.stage == "ocr":
            return f"{self.source}: OCR page {self.chunks_done}/{self.chunks_total}"
        if self.stage == "index":
            return "building the vector index"
        if self.stage == "done":
            return f"{self.files_done}/{self.files_total} files"
        return f"reading {self.source}"


def _instant(value: datetime | date | str, end_of_day: bool) -> str:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO date or datetime: {value!r}") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max if end_of_day else time.min).astimezone()
    elif value.tzinfo is None:
        value = value.astimezone()  # naive = local time
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search to some files, document types and an ingest-date window (both ends inclusive;
    a date as ``ingested_to`` includes that whole day; naive datetimes are local time)."""

    sources: tuple[str, ...] = ()
    doc_types: tuple[str, ...] = ()
    ingested_from: datetime | date | str | None = None
    ingested_to: datetime | date | str | None = None

    def __post_init__(self) -> None:
        for name in ("sources", "doc_types"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value or ()))
        bad = [t for t in self.doc_types if t not in DOC_TYPES]
        if bad:
            raise ValueError(f"doc_types must be among {DOC_TYPES}, got {bad}")
        for name, end in (("ingested_from", False), ("ingested_to", True)):
            value = getattr(self, name)
            if value is not None and value != "":
                object.__setattr__(self, name, _instant(value, end))
            else:
                object.__setattr__(self, name, None)

    def conditions(self) -> list[Condition]:
        out: list[Condition] = []
        if self.sources:
            out.append(Match("source", self.sources))
        if self.doc_types:
            out.append(Match("doc_type", self.doc_types))
        if self.ingested_from or self.ingested_to:
            out.append(Range("ingested_at", gte=self.ingested_from, lte=self.ingested_to))
        return out


@dataclass(frozen=True)
class Hit:
    text: str
    source: str  # file name
    page: int  # 1-based (1 for files without pages)
    score: float  # RRF score (hybrid), cosine (dense) or BM25 (keyword): the ranking's, not for display
    matched_terms: tuple[str, ...]  # words of `text` that match query terms, for highlighting
    doc_id: str
    chunk_index: int
    path: str = ""
    doc_type: str = ""
    char_start: int = 0
    char_end: int = 0
    ingested_at: str = ""
    id: str = ""
    ocr: bool = False  # the chunk's text was read by OCR (payload "ocr": true)
    similarity: float | None = None  # cosine of the query's and the chunk's dense vectors (None: keyword search)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DocumentHits:
    """One document's share of a search's hits (``search.group_by_document``): its best passages, best first."""

    doc_id: str
    source: str
    doc_type: str
    hits: tuple[Hit, ...]  # at least one
    matched: int  # how many of the search's hits were this document's (>= len(hits))

    def __post_init__(self) -> None:
        if not self.hits or self.matched < len(self.hits):
            raise ValueError(f"a document result needs 1..matched hits, got {len(self.hits)} of {self.matched}")

    @property
    def best(self) -> Hit:
        return self.hits[0]

    @property
    def similarity(self) -> float | None:
        """The best dense cosine among its passages (None for keyword search)."""
        sims = [h.similarity for h in self.hits if h.similarity is not None]
        return max(sims) if sims else None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    source: str
    path: str
    doc_type: str
    pages: int
    chunks: int
    ingested_at: str
    size_bytes: int
    model_id: str
    notes: tuple[str, ...] = ()
    kept_copy: bool = False  # the original bytes are kept under the data dir

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SimilarDocument:
    """A document near another one by their similarity vectors (cosine), for "Similar documents"."""

    doc: DocumentInfo
    score: float


@dataclass(frozen=True)
class DocumentFile:
    """A handle on an ingested file's original (kept copy, or the file at its path): ``read()`` loads the bytes,
    and raises ``IndexerError`` if the file at the path no longer has the ingested content."""

    name: str
    mime: str
    size_bytes: int
    path: str | None
    reader: Callable[[], bytes] = field(repr=False, compare=False)

    def read(self) -> bytes:
        return self.reader()


@dataclass(frozen=True)
class Facets:
    """The values the documents of the index have, for search filters (sorted, case-insensitively)."""

    sources: tuple[str, ...]
    doc_types: tuple[str, ...]


@dataclass(frozen=True)
class Stats:
    documents: int
    chunks: int
    backend: str  # edge | local | memory | server
    location: str  # folder or URL
    collection: str
    model_id: str  # the model that built the active index
    dim: int
    configured_model_id: str = ""
    reindex_needed: bool = False
    incomplete_chunks: int = 0  # chunks of interrupted ingests (invisible; cleaned when the file is ingested again)
    cluster: dict | None = None  # a Qdrant server: cluster status, peers and shards (or "error"); None if embedded
    serving_model: str = ""  # name@version of the model that built the active index (it embeds the queries)
    current_model: str = ""  # name@version the settings name now (a published name follows its `current`)
    stale: bool = False  # the active index is not what the settings ask for: reindex (see reindex_needed)
    reindexing: bool = False  # a reindex is running in this process
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
