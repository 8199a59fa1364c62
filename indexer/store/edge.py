"""Embedded default backend: qdrant-edge (the Qdrant engine in-process), one shard folder a collection.

Layout under the root folder::

    .moesearch.lock         single-opener guard (see lock.py)
    active.json             {"collection": NAME}: which collection search uses, replaced atomically
    collections/NAME/       one EdgeShard (segments + WAL) per collection

qdrant-edge 0.9.0 holds the GIL inside ``optimize()`` and ``query()``; the pipeline decides when to call
``optimize`` (HNSW build), and collections here are safe to share between threads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from .base import (
    DENSE,
    SIMILAR,
    SPARSE,
    CollectionSpec,
    Match,
    PointRecord,
    QuerySpec,
    Range,
    Record,
    SparseVec,
    StoreError,
    Where,
    named_vectors,
)
from .lock import FolderLock

log = logging.getLogger(__name__)
ACTIVE_FILE = "active.json"


def _condition(cond) -> qe.FieldCondition:
    if isinstance(cond, Match):
        values = cond.values
        if any(isinstance(v, bool) for v in values):  # the 0.9.0 binding turns True into the integer 1
            raise TypeError(f"Match on {cond.field!r}: boolean values are not supported; store flags as keywords")
        if len(values) == 1:
            return qe.FieldCondition(cond.field, match=qe.MatchValue(values[0]))
        return qe.FieldCondition(cond.field, match=qe.MatchAny(list(values)))
    if isinstance(cond, Range):
        if cond.is_datetime:
            return qe.FieldCondition(cond.field, range=qe.RangeDateTime(gte=cond.gte, lte=cond.lte))
        return qe.FieldCondition(cond.field, range=qe.RangeFloat(gte=cond.gte, lte=cond.lte))
    raise TypeError(f"unknown condition {cond!r}")


def edge_filter(where: Where) -> qe.Filter | None:
    return qe.Filter(must=[_condition(c) for c in where]) if where else None


def _sparse(vec: SparseVec) -> qe.SparseVector:
    return qe.SparseVector(list(vec.indices), list(vec.values))


class EdgeCollection:
    def __init__(self, name: str, shard: qe.EdgeShard):
        self.name = name
        self.shard = shard
        self._closed = False

    def upsert(self, points: Sequence[PointRecord]) -> None:
        out = [qe.Point(p.id, named_vectors(p, _sparse), p.payload) for p in points]
        if out:
            self.shard.update(qe.UpdateOperation.upsert_points(out))

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None:
        self.shard.update(qe.UpdateOperation.set_payload_by_filter(edge_filter(where) or qe.Filter(), payload))

    def delete(self, where: Where) -> None:
        if not where:
            raise ValueError("delete needs a filter (refusing to delete everything)")
        self.shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(where)))

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def count(self, where: Where = ()) -> int:
        return int(self.shard.count(qe.CountRequest(exact=True, filter=edge_filter(where))))

    def scroll(self, where: Where = (), limit: int = 256, offset: Any = None) -> tuple[list[Record], Any]:
        records, nxt = self.shard.scroll(qe.ScrollRequest(offset=offset, limit=limit, filter=edge_filter(where),
                                                          with_payload=True, with_vector=False))
        return [Record.of(r) for r in records], nxt

    def retrieve(self, ids: Sequence[str], vectors: Sequence[str] = ()) -> list[Record]:
        if not ids:
            return []
        found = self.shard.retrieve(list(ids), with_payload=True, with_vector=list(vectors) if vectors else False)
        return [Record.of(r) for r in found]

    def query(self, spec: QuerySpec) -> list[Record]:
        flt = edge_filter(spec.where)
        params = qe.SearchParams(hnsw_ef=spec.hnsw_ef) if spec.hnsw_ef else None
        if spec.fused:
            prefetches = [
                qe.Prefetch(limit=spec.prefetch, query=qe.Query.Nearest([float(x) for x in spec.dense], using=DENSE),
                            filter=flt, params=params),
                qe.Prefetch(limit=spec.prefetch, query=qe.Query.Nearest(_sparse(spec.sparse), using=SPARSE),
                            filter=flt),
            ]
            request = qe.QueryRequest(limit=spec.limit, prefetches=prefetches, query=qe.Fusion.Rrf(k=spec.rrf_k),
                                      filter=flt, with_payload=True)
        elif spec.dense is not None:
            request = qe.QueryRequest(limit=spec.limit, query=qe.Query.Nearest([float(x) for x in spec.dense],
                                                                               using=spec.using),
                                      filter=flt, params=params, with_payload=True)
        else:
            request = qe.QueryRequest(limit=spec.limit, query=qe.Query.Nearest(_sparse(spec.sparse), using=SPARSE),
                                      filter=flt, with_payload=True)
        return [Record.of(p) for p in self.shard.query(request)]

    def unindexed(self) -> int:
        """Dense vectors not yet in an HNSW graph (the engine counts sparse vectors as indexed too)."""
        def has(name: str) -> int:
            return int(self.shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=[qe.HasVectorCondition(
                name)]))))

        return max(0, has(DENSE) + has(SPARSE) + has(SIMILAR) - int(self.shard.info().indexed_vectors_count))

    def optimize(self) -> bool:
        return bool(self.shard.optimize())

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.shard.flush()
            self.shard.close()


class EdgeRoot:
    kind = "edge"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.location = str(self.folder)
        self._lock = FolderLock(self.folder)
        (self.folder / "collections").mkdir(exist_ok=True)
        self._open: dict[str, EdgeCollection] = {}
        self._mutex = threading.Lock()

    def _dir(self, name: str) -> Path:
        return self.folder / "collections" / name

    def active(self) -> str | None:
        path = self.folder / ACTIVE_FILE
        if not path.is_file():
            return None
        try:
            name = json.loads(path.read_text())["collection"]
        except (ValueError, KeyError) as exc:
            raise StoreError(f"{path}: unreadable ({exc}); delete it to start a new index") from None
        return name if self._dir(name).is_dir() else None

    def collections(self) -> list[str]:
        return sorted(p.name for p in (self.folder / "collections").iterdir() if p.is_dir())

    def create(self, name: str, spec: CollectionSpec) -> EdgeCollection:
        with self._mutex:
            if name == self.active():
                raise StoreError(f"collection {name!r} is active; refusing to recreate it")
            self._close_one(name)
            if self._dir(name).exists():
                shutil.rmtree(self._dir(name))
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine),
                         **({SIMILAR: qe.EdgeVectorParams(size=spec.similar_dim, distance=qe.Distance.Cosine)}
                            if spec.similar_dim else {})},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                hnsw_config=qe.HnswIndexConfig(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct,
                                               full_scan_threshold=10000),
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=spec.indexing_threshold_kb),
            )
            shard = qe.EdgeShard.create(str(self._dir(name)), config)
            for schema, names in ((qe.PayloadSchemaType.Keyword, spec.keyword_fields),
                                  (qe.PayloadSchemaType.Integer, spec.integer_fields),
                                  (qe.PayloadSchemaType.Bool, spec.bool_fields),
                                  (qe.PayloadSchemaType.Datetime, spec.datetime_fields)):
                for field_name in names:
                    shard.update(qe.UpdateOperation.create_field_index(field_name, schema))
            col = self._open[name] = EdgeCollection(name, shard)
            return col

    def open(self, name: str) -> EdgeCollection:
        with self._mutex:
            if name in self._open:
                return self._open[name]
            if not self._dir(name).is_dir():
                raise StoreError(f"no collection {name!r} under {self.folder}")
            try:
                shard = qe.EdgeShard.load(str(self._dir(name)))
            except Exception as exc:  # the engine raises a bare Exception
                raise StoreError(f"cannot open {self._dir(name)}: {exc}") from exc
            col = self._open[name] = EdgeCollection(name, shard)
            return col

    def activate(self, name: str) -> None:
        if not self._dir(name).is_dir():
            raise StoreError(f"no collection {name!r} to activate")
        tmp = self.folder / (ACTIVE_FILE + ".tmp")
        with open(tmp, "w") as fh:
            json.dump({"collection": name}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / ACTIVE_FILE)  # atomic switch
        log.info("edge store %s: active collection is now %s", self.folder, name)

    def info(self, name: str) -> dict:
        """What the engine reports about a collection; never raises."""
        out: dict[str, Any] = {"kind": self.kind, "folder": str(self._dir(name))}
        try:
            info = self.open(name).shard.info()
            out.update(points=info.points_count, indexed_vectors=info.indexed_vectors_count,
                       segments=info.segments_count)
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    def cluster(self, name: str) -> None:
        return None  # embedded: no cluster

    def _close_one(self, name: str) -> None:
        col = self._open.pop(name, None)
        if col is not None:
            col.close()

    def drop(self, name: str) -> None:
        with self._mutex:
            if name == self.active():
                raise StoreError(f"collection {name!r} is active; activate another one before dropping it")
            self._close_one(name)
            shutil.rmtree(self._dir(name), ignore_errors=True)

    def close(self) -> None:
        with self._mutex:
            for name in list(self._open):
                self._close_one(name)
        self._lock.release()
