"""One model's view of text: chunking on its tokenizer, dense vectors from the Embedder, BM25 vectors, and the
documents' similarity vectors ("Similar documents").

A document's similarity vector is the normalised mean of its chunks' embeddings for the ``symmetric`` task when
the model has one (MoTE's document-to-document expert; at most `SIMILAR_CHUNKS` evenly spaced chunks are embedded
again for it), else the normalised mean of the chunk vectors already computed for search (no extra work).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .chunking import Chunk, chunk_pages
from .schema import IndexSpec
from .sparse import Bm25Encoder, Bm25Params, resolve_language
from .store.base import SparseVec

log = logging.getLogger(__name__)
SYMMETRIC, SEARCH_DOCUMENT = "symmetric", "search_document"
SIMILAR_CHUNKS = 16  # chunks a document's symmetric embedding is averaged over (evenly spaced; bounds the cost)
QUERY_CACHE = 512  # query vectors kept: the app searches the same text again on every rerun (mode, filters, k)


class Encoders:
    """Chunker + dense + sparse encoders for one index spec.  Thread-safe (onnxruntime sessions and
    tokenizers are), so one instance serves every search and the ingest."""

    def __init__(self, embedder, spec: IndexSpec):
        self.embedder = embedder
        self.spec = spec
        self.tokenizer = Tokenizer.from_file(str(Path(embedder.model_dir) / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.bm25 = Bm25Encoder(Bm25Params(**spec.bm25))
        self._query_vector = functools.lru_cache(maxsize=QUERY_CACHE)(self._embed_query)
        prefix = len(self.tokenizer.encode(embedder.settings.document_prefix, add_special_tokens=False).ids)
        room = embedder.max_length - 2 - prefix  # [CLS] prefix ... [SEP]
        self.max_tokens = min(spec.chunk_tokens, room)
        self.overlap = min(spec.chunk_overlap, max(0, self.max_tokens // 2 - 1))
        if self.max_tokens < spec.chunk_tokens:
            log.warning("chunks of %d tokens do not fit %s (max length %d with prefix and special tokens); "
                        "using %d-token chunks", spec.chunk_tokens, spec.model_id, embedder.max_length,
                        self.max_tokens)

    @classmethod
    def spec_for(cls, embedder, settings) -> IndexSpec:
        tokenizer = getattr(embedder, "tokenizer", None)
        language = resolve_language(settings.bm25_language, tokenizer.get_vocab_size() if tokenizer else 0)
        bm25 = Bm25Params(language, settings.bm25_k, settings.bm25_b, settings.bm25_avg_len)
        similar = SYMMETRIC if SYMMETRIC in getattr(embedder, "tasks", ()) else SEARCH_DOCUMENT
        return IndexSpec(model_id=embedder.model_id, dim=int(embedder.dim), chunk_tokens=settings.chunk_tokens,
                         chunk_overlap=settings.chunk_overlap, bm25=bm25.as_dict(),
                         model_dir=str(Path(embedder.model_dir).absolute()), similar=similar)

    def chunk(self, pages: Sequence[tuple[int, str]]) -> list[Chunk]:
        return chunk_pages(pages, self.tokenizer, self.max_tokens, self.overlap)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.embedder.embed_documents(list(texts), batch_size=batch_size)  # (N, D)

    def embed_query(self, text: str) -> np.ndarray:
        """(D,) read-only: the query's vector, computed once per distinct text (the model of an Encoders is fixed)."""
        return self._query_vector(text)

    def _embed_query(self, text: str) -> np.ndarray:
        vec = self.embedder.embed_query(text)  # (D,)
        vec.flags.writeable = False  # shared by every search of this text
        return vec

    def similarity_vector(self, texts: Sequence[str], dense: np.ndarray) -> np.ndarray | None:
        """A document's similarity vector (D,) from its chunk texts and their search vectors ``dense`` (N, D); None
        for an index without similarity vectors."""
        if not self.spec.similar or not len(texts):
            return None
        if self.spec.similar == SYMMETRIC:
            pick = np.unique(np.linspace(0, len(texts) - 1, min(len(texts), SIMILAR_CHUNKS)).round().astype(int))
            dense = self.embedder.embed([texts[i] for i in pick], task=SYMMETRIC)  # (n, D)
        mean = np.asarray(dense, dtype=np.float32).mean(0)  # (D,)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def sparse_document(self, text: str) -> SparseVec:
        return self.bm25.document(text)

    def sparse_query(self, text: str) -> SparseVec:
        return self.bm25.query(text)
