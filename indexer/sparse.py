"""BM25 sparse vectors, computed in-process the same way for every backend, in one of two modes.

* ``multilingual`` (``indexer.keywords``): language-neutral words (plus each long word's 5-character truncation,
  a stand-in for a stemmer), character bigrams for the scripts written without spaces (Chinese, Japanese, Thai,
  ...), Unicode normalisation, no stop words.
* A Snowball language (``english``, ``german``, ...): qdrant-edge's ``Bm25`` (Qdrant's own tokenizer, that
  language's stop words and stemmer; nothing is downloaded).

Either way documents get saturated, length-normalised term frequencies, queries get 1.0 a term, and the
collection's sparse vector carries Qdrant's IDF modifier, so Qdrant applies the inverse document frequency over
what is stored.  The mode is part of an index's spec (``Bm25Params.as_dict``): an index is always queried in the
mode it was built with.  ``MOESEARCH_BM25_LANGUAGE=auto`` (the default) picks ``multilingual`` for a model with a
multilingual vocabulary and ``english`` otherwise (``resolve_language``).  ``matched_terms`` maps query terms back
to a chunk's text for highlighting: whole words (same tokenizer and stemmer, so "running" in a query highlights
"runs"), and in scripts without spaces the stretches the query's bigrams cover (北京 inside 我在北京大学).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import qdrant_edge as qe

from . import keywords
from .store.base import SparseVec

AUTO, MULTILINGUAL, ENGLISH = "auto", "multilingual", "english"
# A vocabulary this large is a multilingual model's (mBERT 119k, XLM-R / multilingual-e5 / bge-m3 250k, LaBSE
# 501k word pieces); English encoders have 30k (BERT, MiniLM) to 50k (RoBERTa, ModernBERT).
MULTILINGUAL_VOCAB = 100_000


def resolve_language(setting: str, vocab_size: int) -> str:
    """The BM25 mode an index is built with: the setting, or for ``auto`` the one the model's vocabulary calls for."""
    if setting.strip().lower() != AUTO:
        return setting
    return MULTILINGUAL if vocab_size >= MULTILINGUAL_VOCAB else ENGLISH


@dataclass(frozen=True)
class Bm25Params:
    language: str = ENGLISH  # what an index that recorded no language was built with: keep it the default here
    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0
    analyzer: str = ""  # the multilingual analyzer's version (keywords.ANALYZER); "" in a Snowball mode

    def __post_init__(self) -> None:
        if not 0.0 <= self.b <= 1.0 or self.k < 0 or self.avg_len <= 0:
            raise ValueError(f"BM25 needs 0 <= b <= 1, k >= 0, avg_len > 0; got {self}")
        if self.language == AUTO:
            raise ValueError("MOESEARCH_BM25_LANGUAGE 'auto' is resolved against the model (resolve_language) "
                             "before an index is built")
        if self.language == MULTILINGUAL:
            object.__setattr__(self, "analyzer", self.analyzer or keywords.ANALYZER)
            if self.analyzer != keywords.ANALYZER:
                raise ValueError(f"this index's keywords were analysed with {self.analyzer!r}; this version has "
                                 f"{keywords.ANALYZER!r}: run `python -m indexer reindex`")
        elif self.analyzer:
            raise ValueError(f"BM25 language {self.language!r} takes no analyzer, got {self.analyzer!r}")

    def as_dict(self) -> dict:
        out = {"language": self.language, "k": self.k, "b": self.b, "avg_len": self.avg_len}
        return {**out, "analyzer": self.analyzer} if self.analyzer else out


class Bm25Encoder:
    def __init__(self, params: Bm25Params | None = None):
        self.params = params or Bm25Params()
        self._model = None
        if self.params.language != MULTILINGUAL:
            try:
                self._model = qe.Bm25(qe.Bm25Config(k=self.params.k, b=self.params.b, avg_len=self.params.avg_len,
                                                    language=self.params.language))
            except ValueError as exc:
                raise ValueError(f"MOESEARCH_BM25_LANGUAGE: {exc} (or '{MULTILINGUAL}', '{AUTO}')") from None
        self._terms: dict[str, frozenset[int]] = {}
        self._mutex = threading.Lock()

    @property
    def multilingual(self) -> bool:
        return self._model is None

    def document(self, text: str) -> SparseVec:
        if self._model is None:
            p = self.params
            weights = keywords.document_weights(text, p.k, p.b, p.avg_len)
            ids = sorted(weights)
            return SparseVec(tuple(ids), tuple(weights[i] for i in ids))
        v = self._model.embed_document(text)
        return SparseVec(tuple(v.indices), tuple(float(x) for x in v.values))

    def query(self, text: str) -> SparseVec:
        if self._model is None:
            ids = keywords.query_ids(text)
            return SparseVec(tuple(ids), (1.0,) * len(ids))
        v = self._model.embed_query(text)
        return SparseVec(tuple(v.indices), tuple(float(x) for x in v.values))

    def term_ids(self, word: str) -> frozenset[int]:
        """The BM25 term ids one word maps to (empty for stop words)."""
        key = word.lower()
        ids = self._terms.get(key)
        if ids is None:
            ids = frozenset(self.query(key).indices)
            with self._mutex:
                if len(self._terms) > 200_000:
                    self._terms.clear()
                self._terms[key] = ids
        return ids

    def matched_terms(self, query: str | SparseVec, text: str) -> tuple[str, ...]:
        """Distinct stretches of ``text`` (as written there) that match a query term, in order of appearance: words,
        and in scripts without spaces the stretches matching bigrams cover (``keywords.highlight_spans`` finds
        them again in a text)."""
        wanted = set((self.query(query) if isinstance(query, str) else query).indices)
        if not wanted:
            return ()
        if self._model is None:
            return keywords.matched(text, wanted)
        first: dict[str, str] = {}  # lower-cased word -> its first spelling in the text
        for piece in keywords.pieces(text):
            first.setdefault(piece.group().lower(), piece.group())
        return tuple(word for low, word in first.items() if not self.term_ids(low).isdisjoint(wanted))
