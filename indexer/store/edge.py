"""Embedded default backend: qdrant-edge (the Qdrant engine in-process), one shard folder a collection.

Layout under the root folder::

    .moesearch.lock         single-opener guard (see lock.py)
    active.json             {"collection": NAME}: which collection search uses, replaced atomically
    collections/NAME/       one EdgeShard (segments + WAL) per collection

qdrant-edge 0.9.0 holds the GIL inside ``optimize()`` and ``query()``; the pipeline decides when to call
``optimize`` (HNSW build), which runs in a child process on a copy and switches it in (``edge_build.py``), so
searches from other threads go on during a build; collections here are safe to share between threads.
Quantized collections (``CollectionSpec.quantization``) keep the codes in RAM and the float32 originals on disk
(``Memory.Cold``: mmap, read back for rescoring); codes exist only in optimised segments (past the indexing
threshold), so a small collection is searched on its originals.
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

from indexer.rwlock import RWLock

from . import edge_build
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
    search_params,
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


def quantization_of(folder: Path) -> str:
    """The quantization mode of the ``dense`` vectors of the shard in ``folder`` (its persisted config)."""
    try:
        config = json.loads((folder / "edge_config.json").read_text())
        found = (config["vectors"][DENSE].get("quantization_config") or {})
    except (OSError, ValueError, KeyError, AttributeError):
        return "none"
    return "int8" if "scalar" in found else "binary" if "binary" in found else "none"


def vector_params(dim: int, quantization: str) -> qe.EdgeVectorParams:
    if quantization == "none":
        return qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
    if quantization == "int8":
        codes = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
    else:  # binary, 2 bits a dim (1 bit lost half the recall at 64-384 dims); the query keeps 8 bits (asymmetric)
        codes = qe.BinaryQuantizationConfig(encoding=qe.BinaryQuantizationEncoding.TwoBits, memory=qe.Memory.Pinned,
                                            query_encoding=qe.BinaryQuantizationQueryEncoding.Scalar8Bits)
    return qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, quantization_config=codes,
                               memory=qe.Memory.Cold)


class EdgeCollection:
    """One shard.  Reads share ``_swap`` (taken exclusively only while a built copy is switched in); writes take
    ``_writes``, which an index build holds from its copy to its switch (writes wait, searches do not)."""

    def __init__(self, name: str, shard: qe.EdgeShard, folder: Path | None = None, root: Path | None = None):
        self.name = name
        self.shard = shard
        self.folder = folder  # None: optimize() builds in-process (blocks other threads)
        self._root = root
        self.quantization = quantization_of(folder) if folder is not None else "none"
        self._swap = RWLock()
        self._writes = threading.RLock()
        self._closed = False

    def _update(self, operation) -> None:
        with self._writes, self._swap.read():
            self.shard.update(operation)

    def upsert(self, points: Sequence[PointRecord]) -> None:
        out = [qe.Point(p.id, named_vectors(p, _sparse), p.payload) for p in points]
        if out:
            self._update(qe.UpdateOperation.upsert_points(out))

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None:
        self._update(qe.UpdateOperation.set_payload_by_filter(edge_filter(where) or qe.Filter(), payload))

    def delete(self, where: Where) -> None:
        if not where:
            raise ValueError("delete needs a filter (refusing to delete everything)")
        self._update(qe.UpdateOperation.delete_points_by_filter(edge_filter(where)))

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)))

    def count(self, where: Where = ()) -> int:
        with self._swap.read():
            return int(self.shard.count(qe.CountRequest(exact=True, filter=edge_filter(where))))

    def scroll(self, where: Where = (), limit: int = 256, offset: Any = None) -> tuple[list[Record], Any]:
        with self._swap.read():
            records, nxt = self.shard.scroll(qe.ScrollRequest(offset=offset, limit=limit, filter=edge_filter(where),
                                                              with_payload=True, with_vector=False))
        return [Record.of(r) for r in records], nxt

    def retrieve(self, ids: Sequence[str], vectors: Sequence[str] = ()) -> list[Record]:
        if not ids:
            return []
        with self._swap.read():
            found = self.shard.retrieve(list(ids), with_payload=True,
                                        with_vector=list(vectors) if vectors else False)
        return [Record.of(r) for r in found]

    def _params(self, spec: QuerySpec) -> qe.SearchParams | None:
        return search_params(spec, self.quantization, qe.SearchParams, qe.QuantizationSearchParams,
                             prefetch=spec.fused)

    def query(self, spec: QuerySpec) -> list[Record]:
        flt = edge_filter(spec.where)
        params = self._params(spec)
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
        with self._swap.read():
            found = self.shard.query(request)
        return [Record.of(p) for p in found]

    def unindexed(self) -> int:
        """Dense vectors not yet in an HNSW graph (the engine counts sparse vectors as indexed too)."""
        def has(name: str) -> int:
            return int(self.shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=[qe.HasVectorCondition(
                name)]))))

        with self._swap.read():
            return max(0, has(DENSE) + has(SPARSE) + has(SIMILAR) - int(self.shard.info().indexed_vectors_count))

    def optimize(self) -> bool:
        """Build HNSW (and quantized codes) for the segments that need it; True if any were built.  Blocks the
        caller and other writers until done, never searches (see ``edge_build``)."""
        if self.folder is None or self._root is None:
            with self._writes, self._swap.write():
                return bool(self.shard.optimize())
        with self._writes:
            self.shard.flush()
            built = edge_build.build_dir(self._root, self.name)
            try:
                optimized = edge_build.run_child(self.folder, built)
            except (RuntimeError, OSError, ValueError) as exc:
                raise StoreError(f"{self.name}: {exc}") from exc
            if not optimized:
                shutil.rmtree(built, ignore_errors=True)
                return False
            old = edge_build.old_dir(self._root, self.name)
            with self._swap.write():  # searches wait from here: close, two renames, load
                self.shard.close()
                os.replace(self.folder, old)
                try:
                    os.replace(built, self.folder)
                    self.shard = qe.EdgeShard.load(str(self.folder))
                except Exception as exc:  # put the old shard back; the engine raises a bare Exception
                    if self.folder.exists():
                        shutil.rmtree(self.folder, ignore_errors=True)
                    os.replace(old, self.folder)
                    self.shard = qe.EdgeShard.load(str(self.folder))
                    raise StoreError(f"{self.name}: the built index could not be loaded ({exc}); kept the old one") \
                        from exc
            shutil.rmtree(old, ignore_errors=True)
            return True

    def flush(self) -> None:
        with self._writes, self._swap.read():
            self.shard.flush()

    def close(self) -> None:
        with self._writes, self._swap.write():
            if not self._closed:
                self._closed = True
                self.shard.flush()
                self.shard.close()


OPEN_MARGIN = 32 << 20  # bytes free beyond the sparse holes before an embedded index is opened


class NoRoomToOpen(StoreError):
    """Too little free disk to open the embedded index safely (its sparse files may fill: SIGBUS)."""


def _room_to_open(folder: Path) -> None:
    """Opening a shard fills some of its sparse, memory-mapped files (measured: `stats` alone took an index from
    20 MB to 101 MB on disk); on a full disk that is a SIGBUS, not an error.  So refuse with one line first."""
    import shutil

    from indexer.diskspace import holes

    free, sparse = shutil.disk_usage(folder).free, holes(folder)
    if free < sparse + OPEN_MARGIN:
        raise NoRoomToOpen(f"not enough free disk space to open the index at {folder} safely: {free / 2**20:.0f} MB "
                         f"free, it needs {(sparse + OPEN_MARGIN) / 2**20:.0f} MB (its memory-mapped files reserve "
                         f"{sparse / 2**20:.0f} MB not yet written); free some space and try again")


class EdgeRoot:
    kind = "edge"
    owns_folder, shared = True, False

    read_only = False  # True: a private copy of a store that cannot be opened in place (edge_copy.py)

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.location = str(self.folder)
        self._copy_of: Path | None = None
        self._lock = FolderLock(self.folder)
        try:
            (self.folder / "collections").mkdir(exist_ok=True)
            _room_to_open(self.folder)
        except BaseException:
            self._lock.release()
            raise
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
            edge_build.recover(self.folder, self._dir(name), name)
            if self._dir(name).exists():
                shutil.rmtree(self._dir(name))
            config = qe.EdgeConfig(
                vectors={DENSE: vector_params(spec.dim, spec.quantization),
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
            col = self._open[name] = EdgeCollection(name, shard, self._dir(name), self.folder)
            return col

    def open(self, name: str) -> EdgeCollection:
        with self._mutex:
            if name in self._open:
                return self._open[name]
            edge_build.recover(self.folder, self._dir(name), name)
            if not self._dir(name).is_dir():
                raise StoreError(f"no collection {name!r} under {self.folder}")
            try:
                shard = qe.EdgeShard.load(str(self._dir(name)))
            except Exception as exc:  # the engine raises a bare Exception
                raise StoreError(f"cannot open {self._dir(name)}: {exc}") from exc
            col = self._open[name] = EdgeCollection(name, shard, self._dir(name), self.folder)
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

    @classmethod
    def read_only_copy(cls, folder: str | os.PathLike, scratch: str | os.PathLike) -> EdgeRoot:
        """A root over a private copy of ``folder`` (in ``scratch``) for commands that only read; writes are
        refused by the pipeline (``read_only``), the copy is deleted on close."""
        from . import edge_copy

        dst = edge_copy.copy_store(Path(folder), Path(scratch))
        try:
            root = cls(dst)
        except BaseException:
            edge_copy.remove_copy(dst)
            raise
        root.read_only, root._copy_of, root.location = True, Path(folder), f"{folder} (read-only copy in {dst})"
        return root

    def close(self) -> None:
        with self._mutex:
            for name in list(self._open):
                self._close_one(name)
        self._lock.release()
        if self._copy_of is not None:
            from . import edge_copy

            edge_copy.remove_copy(self.folder)
