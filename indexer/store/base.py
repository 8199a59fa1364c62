"""The store interface: what the pipeline asks of a vector store, and the neutral types it speaks in.

A *root* (one per backend: qdrant-edge folder, qdrant-client local/memory, Qdrant server) holds several
*collections* and knows which one is active (the one search uses).  A collection takes points that carry a
named dense vector ``dense``, a BM25 sparse vector ``bm25`` (Qdrant applies IDF) and a payload, and answers
dense, sparse and RRF-fused queries under payload filters; a collection made with ``similar_dim`` also holds a
dense vector ``similar`` on the points that have one (a document's similarity vector on its record) and answers
dense queries against it.  The store never interprets text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["DENSE", "MODES", "OVERSAMPLING", "QUANTIZATIONS", "SIMILAR", "SPARSE", "Collection", "CollectionSpec",
           "Match", "PointRecord", "QuerySpec", "Range", "Record", "Root", "SparseVec", "StoreError",
           "StoreLockedError", "scroll_all"]
DENSE, SPARSE, SIMILAR = "dense", "bm25", "similar"
DENSE_VECTORS = (DENSE, SIMILAR)  # the dense vector names a query may use
MODES = ("hybrid", "dense", "keyword")
# Compression of the ``dense`` vectors: "none" (float32 in RAM), "int8" (scalar: 1 byte a dim in RAM, float32
# originals on disk, candidates rescored with them), "binary" (2 bits a dim in RAM, originals on disk, rescored).
QUANTIZATIONS = ("none", "int8", "binary")
OVERSAMPLING = {"none": 1.0, "int8": 2.0, "binary": 8.0}  # candidates fetched on the codes per result, before rescoring


class StoreError(RuntimeError):
    """The store cannot be opened or used (connection, corruption, missing collection)."""


class StoreLockedError(StoreError):
    """Another process holds the embedded store."""


@dataclass(frozen=True)
class SparseVec:
    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(f"sparse vector: {len(self.indices)} indices but {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class PointRecord:
    """One point to write; ``dense``/``sparse`` None = a payload-only point (manifests, metadata)."""

    id: str
    payload: dict[str, Any]
    dense: np.ndarray | None = None  # (D,) float32
    sparse: SparseVec | None = None
    similar: np.ndarray | None = None  # (D,) float32: a document's similarity vector (its record)


@dataclass(frozen=True)
class Match:
    """``field`` equals one of ``values`` (keyword, integer or bool)."""

    field: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values) if isinstance(self.values, list | set)
                               else (self.values,))
        if not self.values:
            raise ValueError(f"Match on {self.field!r} needs at least one value")


@dataclass(frozen=True)
class Range:
    """``gte <= field <= lte``; numbers for numeric fields, ISO-8601 strings for datetime fields."""

    field: str
    gte: float | str | None = None
    lte: float | str | None = None

    def __post_init__(self) -> None:
        if self.gte is None and self.lte is None:
            raise ValueError(f"Range on {self.field!r} needs gte or lte")
        kinds = {type(v) is str for v in (self.gte, self.lte) if v is not None}
        if len(kinds) > 1:
            raise ValueError(f"Range on {self.field!r}: mix of datetime strings and numbers")

    @property
    def is_datetime(self) -> bool:
        return isinstance(self.gte if self.gte is not None else self.lte, str)


Condition = Match | Range
Where = Sequence[Condition]


@dataclass(frozen=True)
class QuerySpec:
    """A search: dense, sparse (keyword) or both fused with RRF, under ``where``."""

    limit: int
    dense: np.ndarray | None = None
    sparse: SparseVec | None = None
    where: tuple[Condition, ...] = ()
    prefetch: int = 100
    rrf_k: int = 60
    hnsw_ef: int | None = None
    using: str = DENSE  # which dense vector ``dense`` is compared with: "dense" (chunks) or "similar" (documents)
    oversampling: float | None = None  # quantized collections: None = OVERSAMPLING of the collection's mode
    exact: bool = False  # brute force over the float32 originals (no HNSW, no quantization): the reference

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.oversampling is not None and not self.oversampling >= 1.0:
            raise ValueError(f"oversampling must be >= 1, got {self.oversampling}")
        if self.using not in DENSE_VECTORS:
            raise ValueError(f"using must be one of {DENSE_VECTORS}, got {self.using!r}")
        if self.using != DENSE and (self.dense is None or self.sparse is not None):
            raise ValueError(f"a query on {self.using!r} is dense only")
        if self.dense is None and self.sparse is None:
            raise ValueError("a query needs a dense vector, a sparse vector or both")
        object.__setattr__(self, "where", tuple(self.where))

    @property
    def fused(self) -> bool:
        return self.dense is not None and self.sparse is not None


@dataclass(frozen=True)
class Record:
    id: str
    payload: dict[str, Any]
    score: float = 0.0
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # dense vectors asked for by name (retrieve)

    @classmethod
    def of(cls, point) -> Record:
        """From a point either client returns (id, payload, optional score, optional named vectors)."""
        raw = getattr(point, "vector", None)
        vectors = {k: np.asarray(v, dtype=np.float32) for k, v in raw.items() if k in DENSE_VECTORS} \
            if isinstance(raw, dict) else {}
        return cls(str(point.id), dict(point.payload or {}), float(getattr(point, "score", 0.0) or 0.0), vectors)


def named_vectors(point: PointRecord, sparse: Callable[[SparseVec], Any]) -> dict[str, Any]:
    """A point's vectors by name (dense as a float32 list, sparse in the client's own type), for an upsert."""
    vector: dict[str, Any] = {}
    if point.dense is not None:
        vector[DENSE] = np.asarray(point.dense, dtype=np.float32).tolist()
    if point.sparse is not None and len(point.sparse):
        vector[SPARSE] = sparse(point.sparse)
    if point.similar is not None:
        vector[SIMILAR] = np.asarray(point.similar, dtype=np.float32).tolist()
    return vector


@dataclass(frozen=True)
class CollectionSpec:
    """Everything needed to create a collection: vector size, HNSW and the payload indexes."""

    dim: int
    keyword_fields: tuple[str, ...] = ()
    integer_fields: tuple[str, ...] = ()
    bool_fields: tuple[str, ...] = ()
    datetime_fields: tuple[str, ...] = ()
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    indexing_threshold: int = 20000  # points; HNSW is built for segments past this size (0 = never)
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    similar_dim: int = 0  # > 0: the collection also holds the dense vector ``similar`` (documents' records)
    quantization: str = "none"  # one of QUANTIZATIONS, for the ``dense`` vectors (``similar`` stays float32)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        if self.similar_dim < 0:
            raise ValueError(f"similar_dim must be >= 0, got {self.similar_dim}")

    @property
    def indexing_threshold_kb(self) -> int:
        """Qdrant sizes its indexing threshold in KB of dense vectors."""
        if self.indexing_threshold <= 0:
            return 2**31 - 1
        return max(1, self.indexing_threshold * self.dim * 4 // 1024)


@runtime_checkable
class Collection(Protocol):
    name: str

    def upsert(self, points: Sequence[PointRecord]) -> None: ...
    def set_payload(self, where: Where, payload: dict[str, Any]) -> None: ...
    def delete(self, where: Where) -> None: ...
    def delete_ids(self, ids: Sequence[str]) -> None: ...
    def count(self, where: Where = ()) -> int: ...
    def scroll(self, where: Where = (), limit: int = 256, offset: Any = None) -> tuple[list[Record], Any]: ...
    def retrieve(self, ids: Sequence[str], vectors: Sequence[str] = ()) -> list[Record]: ...
    def query(self, spec: QuerySpec) -> list[Record]: ...
    def unindexed(self) -> int: ...
    def optimize(self) -> bool: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class Root(Protocol):
    kind: str  # "edge" | "local" | "memory" | "server": for display (stats); code asks the capabilities below
    location: str  # folder or URL
    # What differs between backends, as capabilities:
    owns_folder: bool  # a folder on this machine that only this process opens (a lock): its disk is checked before
    #                    an ingest, and a collection without metadata is a crash's leftover (no one else writes it)
    shared: bool  # other processes may write to it at the same time (a server): listings are read again after a while

    def active(self) -> str | None: ...
    def collections(self) -> list[str]: ...
    def create(self, name: str, spec: CollectionSpec) -> Collection: ...
    def open(self, name: str) -> Collection: ...
    def activate(self, name: str) -> None: ...
    def drop(self, name: str) -> None: ...
    def info(self, name: str) -> dict: ...
    def cluster(self, name: str) -> dict | None: ...  # a server's cluster status (None: embedded)
    def close(self) -> None: ...


def search_params(spec: QuerySpec, quantization: str, params_cls, quantization_cls, prefetch: bool = False):
    """A query's search parameters, built with the client library's own classes (qdrant-edge's and qdrant-client's
    ``SearchParams`` / ``QuantizationSearchParams`` take the same fields): exact = float32 brute force; a quantized
    collection's dense queries search the codes and rescore ``oversampling`` x the limit on the float32 originals.

    The dense ``prefetch`` of a fused (hybrid) query already fetches ``spec.prefetch`` (100) candidates for 10
    results, and RRF uses only their ranks: it rescores exactly those (oversampling 1 unless the spec sets one).
    Oversampling them too read 2x100 originals a query: at 1M int8 points hybrid p95 23.3 ms against 3.1 ms, with
    the same top 10 as exact hybrid on 99.9% of the results (bench/scale.py measures both; skipping the rescoring
    altogether is as fast but agrees on 94.6% only)."""
    if spec.exact:
        return params_cls(exact=True, quantization=quantization_cls(ignore=True))
    if quantization == "none" or spec.using != DENSE:
        return params_cls(hnsw_ef=spec.hnsw_ef) if spec.hnsw_ef else None
    over = spec.oversampling or (1.0 if prefetch else OVERSAMPLING[quantization])
    return params_cls(hnsw_ef=spec.hnsw_ef, quantization=quantization_cls(rescore=True, oversampling=over))


def scroll_all(collection: Collection, where: Where = (), page: int = 512) -> list[Record]:
    """Every record matching ``where`` (pages through ``scroll``)."""
    out: list[Record] = []
    offset = None
    while True:
        records, offset = collection.scroll(where, limit=page, offset=offset)
        out.extend(records)
        if offset is None:
            return out
