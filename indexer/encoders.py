"""One model's view of text: chunking on its tokenizer, dense vectors from the Embedder, BM25 vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .chunking import Chunk, chunk_pages
from .schema import IndexSpec
from .sparse import Bm25Encoder, Bm25Params
from .store.base import SparseVec

log = logging.getLogger(__name__)


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
        bm25 = Bm25Params(settings.bm25_language, settings.bm25_k, settings.bm25_b, settings.bm25_avg_len)
        return IndexSpec(model_id=embedder.model_id, dim=int(embedder.dim), chunk_tokens=settings.chunk_tokens,
                         chunk_overlap=settings.chunk_overlap, bm25=bm25.as_dict(),
                         model_dir=str(Path(embedder.model_dir).absolute()))

    def chunk(self, pages: Sequence[tuple[int, str]]) -> list[Chunk]:
        return chunk_pages(pages, self.tokenizer, self.max_tokens, self.overlap)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.embedder.embed_documents(list(texts), batch_size=batch_size)  # (N, D)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)  # (D,)

    def sparse_document(self, text: str) -> SparseVec:
        return self.bm25.document(text)

    def sparse_query(self, text: str) -> SparseVec:
        return self.bm25.query(text)
