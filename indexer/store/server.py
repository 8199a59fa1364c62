"""qdrant-client backend: a Qdrant server or cluster (``QDRANT_URL``), or the client's local mode
(``":memory:"`` or a folder; fine for tests and small data, not thread-safe, so calls are serialised here).

Search goes through an alias (``QDRANT_COLLECTION``) that points at the collection built for the current
model; a reindex builds a new collection and swaps the alias in one request, so search never sees a
half-built index.  Collections are created with the cluster layout from settings.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qdrant_client import QdrantClient
from qdrant_client import models as m

from .base import DENSE, SIMILAR, SPARSE, Match, Range, Record, StoreError, named_vectors, search_params
from .lock import FolderLock

if TYPE_CHECKING:
    from .base import CollectionSpec, PointRecord, QuerySpec, SparseVec, Where

log = logging.getLogger(__name__)


def _condition(cond) -> m.FieldCondition:
    if isinstance(cond, Match):
        values = list(cond.values)
        match = m.MatchValue(value=values[0]) if len(values) == 1 else m.MatchAny(any=values)
        return m.FieldCondition(key=cond.field, match=match)
    if isinstance(cond, Range):
        if cond.is_datetime:
            return m.FieldCondition(key=cond.field, range=m.DatetimeRange(gte=cond.gte, lte=cond.lte))
        return m.FieldCondition(key=cond.field, range=m.Range(gte=cond.gte, lte=cond.lte))
    raise TypeError(f"unknown condition {cond!r}")


def client_filter(where: Where) -> m.Filter | None:
    return m.Filter(must=[_condition(c) for c in where]) if where else None


def _sparse(vec: SparseVec) -> m.SparseVector:
    return m.SparseVector(indices=list(vec.indices), values=list(vec.values))


def vector_params(dim: int, quantization: str) -> m.VectorParams:
    """The ``dense`` vector's config: quantized codes in RAM, float32 originals on disk (see base.QUANTIZATIONS)."""
    if quantization == "none":
        return m.VectorParams(size=dim, distance=m.Distance.COSINE)
    if quantization == "int8":
        codes = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99,
                                                                      always_ram=True))
    else:
        codes = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(
            always_ram=True, encoding=m.BinaryQuantizationEncoding.TWO_BITS,
            query_encoding=m.BinaryQuantizationQueryEncoding.SCALAR8BITS))
    return m.VectorParams(size=dim, distance=m.Distance.COSINE, on_disk=True, quantization_config=codes)


def quantization_of(info) -> str:
    """The mode of a collection's ``dense`` vectors, from ``get_collection`` (its own config, else the global)."""
    params = info.config.params.vectors
    found = (params.get(DENSE).quantization_config if isinstance(params, dict) and params.get(DENSE) else None) \
        or info.config.quantization_config
    return "int8" if isinstance(found, m.ScalarQuantization) else "binary" if isinstance(
        found, m.BinaryQuantization) else "none"


class ClientCollection:
    def __init__(self, name: str, client: QdrantClient, guard: contextlib.AbstractContextManager, server: bool,
                 quantization: str = "none"):
        self.name = name
        self.client = client
        self._guard = guard
        self._server = server
        self.quantization = quantization
        self._write = dict(wait=True, ordering=m.WriteOrdering.STRONG) if server else dict(wait=True)

    def upsert(self, points: Sequence[PointRecord]) -> None:
        structs = [m.PointStruct(id=p.id, vector=named_vectors(p, _sparse), payload=p.payload) for p in points]
        if structs:
            with self._guard:
                self.client.upsert(self.name, structs, **self._write)

    def set_payload(self, where: Where, payload: dict[str, Any]) -> None:
        with self._guard:
            self.client.set_payload(self.name, payload, points=m.FilterSelector(filter=client_filter(where)
                                                                                 or m.Filter()), **self._write)

    def delete(self, where: Where) -> None:
        if not where:
            raise ValueError("delete needs a filter (refusing to delete everything)")
        with self._guard:
            self.client.delete(self.name, m.FilterSelector(filter=client_filter(where)), **self._write)

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            with self._guard:
                self.client.delete(self.name, m.PointIdsList(points=list(ids)), **self._write)

    def count(self, where: Where = ()) -> int:
        with self._guard:
            return int(self.client.count(self.name, count_filter=client_filter(where), exact=True).count)

    def scroll(self, where: Where = (), limit: int = 256, offset: Any = None) -> tuple[list[Record], Any]:
        with self._guard:
            records, nxt = self.client.scroll(self.name, scroll_filter=client_filter(where), limit=limit,
                                              offset=offset, with_payload=True, with_vectors=False)
        return [Record.of(r) for r in records], nxt

    def retrieve(self, ids: Sequence[str], vectors: Sequence[str] = ()) -> list[Record]:
        if not ids:
            return []
        with self._guard:
            found = self.client.retrieve(self.name, list(ids), with_payload=True,
                                         with_vectors=list(vectors) if vectors else False)
        return [Record.of(r) for r in found]

    def _params(self, spec: QuerySpec) -> m.SearchParams | None:
        mode = self.quantization if self._server else "none"  # local mode: brute force, no codes
        return search_params(spec, mode, m.SearchParams, m.QuantizationSearchParams, prefetch=spec.fused)

    def query(self, spec: QuerySpec) -> list[Record]:
        flt = client_filter(spec.where)
        params = self._params(spec)
        dense = [float(x) for x in spec.dense] if spec.dense is not None else None
        with self._guard:
            if spec.fused:
                prefetch = [m.Prefetch(query=dense, using=DENSE, limit=spec.prefetch, filter=flt, params=params),
                            m.Prefetch(query=_sparse(spec.sparse), using=SPARSE, limit=spec.prefetch, filter=flt)]
                res = self.client.query_points(self.name, prefetch=prefetch, query=m.RrfQuery(rrf=m.Rrf(k=spec.rrf_k)),
                                               query_filter=flt, limit=spec.limit, with_payload=True)
            elif dense is not None:
                res = self.client.query_points(self.name, query=dense, using=spec.using, query_filter=flt,
                                               search_params=params, limit=spec.limit, with_payload=True)
            else:
                res = self.client.query_points(self.name, query=_sparse(spec.sparse), using=SPARSE,
                                               query_filter=flt, limit=spec.limit, with_payload=True)
        return [Record.of(p) for p in res.points]

    def unindexed(self) -> int:
        return 0  # the server indexes by itself; local mode has no HNSW

    def optimize(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class ClientRoot:
    """``location``: a URL (server), ``":memory:"``, or a folder (local mode)."""

    def __init__(self, location: str, alias: str = "moesearch", api_key: str | None = None, timeout: int = 60):
        self.alias = alias
        self.location = location
        self._lock: FolderLock | None = None
        if location.startswith(("http://", "https://")):
            self.kind = "server"
            self.owns_folder, self.shared = False, True
            self._guard: contextlib.AbstractContextManager = contextlib.nullcontext()
            self.client = QdrantClient(url=location, api_key=api_key, timeout=timeout)
        else:
            self._guard = threading.RLock()  # local mode is not thread-safe
            if location == ":memory:":
                self.kind = "memory"
                self.owns_folder, self.shared = False, False
                self.client = QdrantClient(location=":memory:")
            else:
                self.kind = "local"
                self.owns_folder, self.shared = True, False
                self._lock = FolderLock(Path(location))
                try:
                    self.client = QdrantClient(path=location)
                except RuntimeError as exc:
                    self._lock.release()
                    raise StoreError(f"{location}: {exc}") from exc
        try:
            with self._guard:
                self.client.get_collections()
        except Exception as exc:
            self.close()
            raise StoreError(f"cannot reach Qdrant at {location}: {exc}") from exc

    def _server(self) -> bool:
        return self.kind == "server"

    def active(self) -> str | None:
        with self._guard:
            for a in self.client.get_aliases().aliases:
                if a.alias_name == self.alias:
                    return a.collection_name
        return None

    def collections(self) -> list[str]:
        with self._guard:
            names = [c.name for c in self.client.get_collections().collections]
        return sorted(n for n in names if n.startswith(self.alias + "-"))

    def create(self, name: str, spec: CollectionSpec) -> ClientCollection:
        if name == self.active():
            raise StoreError(f"collection {name!r} is active; refusing to recreate it")
        with self._guard:
            if self.client.collection_exists(name):
                self.client.delete_collection(name)
            layout = {}
            if self._server():
                layout = dict(shard_number=spec.shard_number, replication_factor=spec.replication_factor,
                              write_consistency_factor=spec.write_consistency_factor)
            self.client.create_collection(
                name,
                vectors_config={DENSE: vector_params(spec.dim, spec.quantization),
                                **({SIMILAR: m.VectorParams(size=spec.similar_dim, distance=m.Distance.COSINE)}
                                   if spec.similar_dim else {})},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
                hnsw_config=m.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct),
                optimizers_config=m.OptimizersConfigDiff(indexing_threshold=spec.indexing_threshold_kb),
                **layout,
            )
            if self._server():  # local mode ignores payload indexes (and warns)
                for schema, names in ((m.PayloadSchemaType.KEYWORD, spec.keyword_fields),
                                      (m.PayloadSchemaType.INTEGER, spec.integer_fields),
                                      (m.PayloadSchemaType.BOOL, spec.bool_fields),
                                      (m.PayloadSchemaType.DATETIME, spec.datetime_fields)):
                    for field_name in names:
                        self.client.create_payload_index(name, field_name, schema, wait=True)
        return ClientCollection(name, self.client, self._guard, self._server(), spec.quantization)

    def open(self, name: str) -> ClientCollection:
        with self._guard:
            if not self.client.collection_exists(name):
                raise StoreError(f"no collection {name!r} at {self.location}")
            quantization = quantization_of(self.client.get_collection(name))
        return ClientCollection(name, self.client, self._guard, self._server(), quantization)

    def activate(self, name: str) -> None:
        ops: list = []
        current = self.active()
        if current is not None:
            ops.append(m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=self.alias)))
        ops.append(m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=name, alias_name=self.alias)))
        with self._guard:
            self.client.update_collection_aliases(change_aliases_operations=ops)  # one atomic swap
        log.info("qdrant %s: alias %s -> %s", self.location, self.alias, name)

    def drop(self, name: str) -> None:
        if name == self.active():
            raise StoreError(f"collection {name!r} is active; activate another one before dropping it")
        with self._guard:
            self.client.delete_collection(name)

    def info(self, name: str) -> dict:
        """What the store reports about a collection (and, on a server, the cluster); never raises."""
        out: dict[str, Any] = {"kind": self.kind, "alias": self.alias}
        try:
            with self._guard:
                info = self.client.get_collection(name)
                out.update(points=info.points_count, indexed_vectors=info.indexed_vectors_count,
                           status=str(getattr(info.status, "value", info.status)))
                if self._server():
                    params = info.config.params
                    out.update(shard_number=params.shard_number, replication_factor=params.replication_factor,
                               write_consistency_factor=params.write_consistency_factor)
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    def cluster(self, name: str) -> dict | None:
        """A server's cluster status, peers and the collection's shards (None for local modes); never raises."""
        if not self._server():
            return None
        out: dict[str, Any] = {}
        try:
            with self._guard:
                status = self.client.cluster_status()
                out["cluster"] = str(getattr(status, "status", status))
                peers = getattr(status, "peers", None)
                if peers:
                    out["peers"] = len(peers)
                    out["this peer"] = getattr(status, "peer_id", "")
                shards = self.client.collection_cluster_info(name)
                out["shards"] = getattr(shards, "shard_count", "")
                out["local shards"] = len(getattr(shards, "local_shards", None) or [])
                out["remote shards"] = len(getattr(shards, "remote_shards", None) or [])
        except Exception as exc:  # an old server, a disabled cluster API, a timeout: report it, do not fail
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    def close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(Exception):
                self.client.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
