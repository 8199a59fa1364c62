"""The query path does only the work a query needs: a query's vector is computed once per distinct text (the app
searches the same text again on every rerun), and results are the same as with a fresh vector each time."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.encoders import QUERY_CACHE, Encoders
from indexer.search import run_search


class Counting:
    """The tiny embedder, counting the queries it embeds."""

    def __init__(self, embedder):
        self._embedder = embedder
        self.queries: list[str] = []

    def embed_query(self, text, dim=None):
        self.queries.append(text)
        return self._embedder.embed_query(text, dim=dim)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


@pytest.fixture
def indexed(pipeline, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Proteins fold into shapes that decide what they do in the cell. " * 4)
    (docs / "b.txt").write_text("Solar wind and magnetic storms disturb radio links and power grids. " * 4)
    assert pipeline.ingest([docs]).ok == 2
    return pipeline


def test_a_query_is_embedded_once_across_reruns(indexed, tiny_embedder):
    active = indexed._active
    counting = Counting(tiny_embedder)
    enc = Encoders(counting, active.spec)
    s = indexed.settings

    def search(text, mode="hybrid", k=5):
        return run_search(active.collection, enc, text, k, None, mode, s.prefetch, s.rrf_k, s.hnsw_ef)

    first = search("protein shapes")
    assert search("protein shapes") == first  # a rerun: same hits
    search("protein shapes", mode="dense")
    search("  protein shapes ", k=3)  # the same query once stripped
    assert counting.queries == ["protein shapes"]
    search("magnetic storms")
    assert counting.queries == ["protein shapes", "magnetic storms"]
    search("magnetic storms", mode="keyword")  # keyword search never embeds
    assert len(counting.queries) == 2
    fresh = Encoders(tiny_embedder, active.spec)  # no cache shared between instances (one a model)
    assert [h.id for h in run_search(active.collection, fresh, "protein shapes", 5, None, "hybrid", s.prefetch,
                                     s.rrf_k, s.hnsw_ef)] == [h.id for h in first]


def test_cached_query_vectors_are_read_only_and_bounded(indexed, tiny_embedder):
    enc = Encoders(tiny_embedder, indexed._active.spec)
    vec = enc.embed_query("protein shapes")
    np.testing.assert_allclose(vec, tiny_embedder.embed_query("protein shapes"), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="read-only"):
        vec[0] = 1.0
    assert enc.embed_query("protein shapes") is vec
    assert enc._query_vector.cache_info().maxsize == QUERY_CACHE
