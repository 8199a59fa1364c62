"""What is stored: point kinds, deterministic ids, payload fields and indexes, and the index spec that
names a collection after the model (and chunking / BM25 settings) that built it."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field

from .store.base import CollectionSpec, Match

NAMESPACE = uuid.UUID("5f0c6d2e-8a59-4c1e-9b8f-6d3a2b7e4c10")  # fixed forever: point ids depend on it
CHUNK, DOC, META = "chunk", "doc", "meta"
KEYWORD_FIELDS = ("kind", "state", "doc_id", "source", "path", "doc_type")
INTEGER_FIELDS = ("chunk_index", "page")
BOOL_FIELDS: tuple[str, ...] = ()  # qdrant-edge 0.9.0 matches True as the integer 1: keep flags as keywords
DATETIME_FIELDS = ("ingested_at",)
WRITING, COMPLETE = "writing", "complete"  # chunk states: only complete chunks are visible
VISIBLE = (Match("kind", (CHUNK,)), Match("state", (COMPLETE,)))  # what search may return
DOC_RECORDS = (Match("kind", (DOC,)),)


def chunk_id(doc_id: str, index: int) -> str:
    """Point id of a chunk: UUIDv5 of doc_id and chunk index (same bytes, same settings -> same ids)."""
    return str(uuid.uuid5(NAMESPACE, f"{doc_id}:{index}"))


def record_id(doc_id: str) -> str:
    """Point id of a document's manifest record (written last: the document is complete once it exists)."""
    return str(uuid.uuid5(NAMESPACE, f"{doc_id}:doc"))


META_ID = str(uuid.uuid5(NAMESPACE, "collection-meta"))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "model"


@dataclass(frozen=True)
class IndexSpec:
    """The settings that decide what a collection holds; a change in any of them needs a reindex."""

    model_id: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int
    bm25: dict = field(default_factory=dict)
    model_dir: str = ""  # where the model was loaded from (not part of identity)
    similar: str = ""  # the task whose embeddings make documents' similarity vectors ("" = an index without them)
    # The weights' content address (embedder.registry: first 12 hex of their sha256), so a model retrained into the
    # same folder or name is a different index.  "" = a collection written before versions were recorded: which
    # weights built it is unknown, so it matches no configured model (it keeps serving and is reported stale).
    model_version: str = ""
    model_name: str = ""  # the registry name when the model is a published version (not part of identity)

    def identity(self) -> dict:
        return {"model_id": self.model_id, "model_version": self.model_version, "dim": self.dim,
                "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap, "bm25": self.bm25,
                "similar": self.similar}

    @property
    def model_label(self) -> str:
        """``name@version`` of the model (the folder's name when unpublished; ``@unknown`` without a version)."""
        name = self.model_name or (self.model_dir.rstrip("/").rsplit("/", 1)[-1] if self.model_dir else "")
        return f"{name or self.model_id}@{self.model_version or 'unknown'}"

    def same_index(self, other: IndexSpec) -> bool:
        return self.identity() == other.identity()

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]

    def collection_name(self, prefix: str) -> str:
        return f"{prefix}-{slug(self.model_id)}-{self.dim}d-{self.fingerprint()}"

    def to_payload(self, state: str) -> dict:
        return {"kind": META, "state": state, **asdict(self)}

    @classmethod
    def from_payload(cls, payload: dict) -> IndexSpec:
        return cls(model_id=payload["model_id"], dim=int(payload["dim"]), chunk_tokens=int(payload["chunk_tokens"]),
                   chunk_overlap=int(payload["chunk_overlap"]), bm25=dict(payload.get("bm25") or {}),
                   model_dir=payload.get("model_dir", ""), similar=payload.get("similar", ""),
                   model_version=payload.get("model_version", ""), model_name=payload.get("model_name", ""))


def collection_spec(spec: IndexSpec, settings) -> CollectionSpec:
    return CollectionSpec(dim=spec.dim, keyword_fields=KEYWORD_FIELDS, integer_fields=INTEGER_FIELDS,
                          bool_fields=BOOL_FIELDS, datetime_fields=DATETIME_FIELDS, hnsw_m=settings.hnsw_m,
                          hnsw_ef_construct=settings.hnsw_ef_construct, indexing_threshold=settings.hnsw_threshold,
                          shard_number=settings.shard_number, replication_factor=settings.replication_factor,
                          write_consistency_factor=settings.write_consistency_factor,
                          similar_dim=spec.dim if spec.similar else 0,
                          quantization=settings.quantization)
