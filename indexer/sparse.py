"""BM25 sparse vectors, computed in-process the same way for every backend.

Term weights come from qdrant-edge's ``Bm25`` (Qdrant's own BM25 tokenizer, stop words and Snowball
stemmer; nothing is downloaded): documents get saturated, length-normalised term frequencies, queries get
1.0 a term, and the collection's sparse vector carries Qdrant's IDF modifier, so Qdrant applies the
inverse document frequency over what is stored.  ``matched_terms`` maps query terms back to the words of a
chunk for highlighting (same tokenizer and stemmer, so "running" in a query highlights "runs").
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import qdrant_edge as qe

from .store.base import SparseVec

WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Bm25Params:
    language: str = "english"
    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.b <= 1.0 or self.k < 0 or self.avg_len <= 0:
            raise ValueError(f"BM25 needs 0 <= b <= 1, k >= 0, avg_len > 0; got {self}")

    def as_dict(self) -> dict:
        return {"language": self.language, "k": self.k, "b": self.b, "avg_len": self.avg_len}


class Bm25Encoder:
    def __init__(self, params: Bm25Params | None = None):
        self.params = params or Bm25Params()
        try:
            self._model = qe.Bm25(qe.Bm25Config(k=self.params.k, b=self.params.b, avg_len=self.params.avg_len,
                                                language=self.params.language))
        except ValueError as exc:
            raise ValueError(f"MOESEARCH_BM25_LANGUAGE: {exc}") from None
        self._terms: dict[str, frozenset[int]] = {}
        self._mutex = threading.Lock()

    def document(self, text: str) -> SparseVec:
        v = self._model.embed_document(text)
        return SparseVec(tuple(v.indices), tuple(float(x) for x in v.values))

    def query(self, text: str) -> SparseVec:
        v = self._model.embed_query(text)
        return SparseVec(tuple(v.indices), tuple(float(x) for x in v.values))

    def term_ids(self, word: str) -> frozenset[int]:
        """The BM25 term ids one word maps to (empty for stop words)."""
        key = word.lower()
        ids = self._terms.get(key)
        if ids is None:
            ids = frozenset(self._model.embed_query(key).indices)
            with self._mutex:
                if len(self._terms) > 200_000:
                    self._terms.clear()
                self._terms[key] = ids
        return ids

    def matched_terms(self, query: str | SparseVec, text: str) -> tuple[str, ...]:
        """Distinct words of ``text`` (as written there) that match a query term, in order of appearance."""
        wanted = set((self.query(query) if isinstance(query, str) else query).indices)
        if not wanted:
            return ()
        first: dict[str, str] = {}  # lower-cased word -> its first spelling in the text
        for word in WORD.findall(text):
            first.setdefault(word.lower(), word)
        return tuple(word for low, word in first.items() if not self.term_ids(low).isdisjoint(wanted))
