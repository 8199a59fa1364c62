"""Search over the API judges its hits as the search page does: each hit's relevance label, and ``good_match`` false
when the best dense similarity is below the model's threshold (``indexer/relevance.py``; MOESEARCH_MIN_SIMILARITY
replaces it), with the threshold itself in the answer."""

from __future__ import annotations

import pytest

from indexer import Calibration, Pipeline, Source
from indexer.relevance import CALIBRATIONS

DOCS = {"cells.txt": "Ribosomes translate messenger RNA into proteins inside every living cell. " * 8,
        "sea.txt": "Whenever it is a damp, drizzly November in my soul, I go to sea as soon as I can. " * 8}


@pytest.mark.parametrize("min_similarity", [None, -1.0, 0.9999])
def test_hits_carry_the_pages_relevance_and_the_answer_says_if_any_is_good(make_client, settings, tiny_embedder,
                                                                             min_similarity):
    settings = settings.model_copy(update={"min_similarity": min_similarity})
    with Pipeline(settings, embedder=tiny_embedder) as pipeline:
        assert pipeline.ingest([Source.upload(name, text.encode()) for name, text in DOCS.items()]).ok == 2
        runtime, client = make_client(pipeline, settings)
        try:
            _check(client, min_similarity)
        finally:
            runtime.close()


def _check(client, min_similarity) -> None:
    found = client.get("/search", params={"q": "ribosomes proteins", "k": 4, "group": "true"}).json()
    sims = [h["similarity"] for h in found["hits"]]
    assert found["hits"] and all(s is not None for s in sims)
    levels = {h["relevance"]["level"] for h in found["hits"]}
    grouped = {h["relevance"]["level"] for d in found["documents"] for h in d["hits"]}
    assert grouped <= levels
    if min_similarity is None:  # the tiny model was never calibrated: no threshold, the cosine as the label
        assert found["good_match"] is True and found["no_match_below"] is None and levels == {"unknown"}
        assert found["hits"][0]["relevance"]["label"] == f"similarity {sims[0]:.2f}"
    elif min_similarity < 0:  # everything passes
        assert found["good_match"] is True and found["no_match_below"] == -1.0 and levels == {"good"}
    else:  # nothing reaches 0.9999: the page would say "No good match"
        assert max(sims) < 0.9999
        assert found["good_match"] is False and found["no_match_below"] == 0.9999 and levels == {"weak"}
        assert "no good match below 1.00" in found["hits"][0]["relevance"]["detail"]
    keyword = client.get("/search", params={"q": "ribosomes", "mode": "keyword"}).json()
    assert keyword["good_match"] is True and keyword["hits"]
    assert {h["relevance"]["level"] for h in keyword["hits"]} == {"keyword"}
    assert keyword["hits"][0]["relevance"]["label"] == "keyword match"


def test_only_the_best_hit_is_a_strong_match(make_client, settings, tiny_embedder, monkeypatch):
    """The strong level is measured for a search's best hit (docs/search.md): with every hit above it, the best one
    is labelled strong and the others good, in the hit list and in the grouped documents alike."""
    with Pipeline(settings, embedder=tiny_embedder) as pipeline:
        assert pipeline.ingest([Source.upload(name, text.encode()) for name, text in DOCS.items()]).ok == 2
        monkeypatch.setitem(CALIBRATIONS, pipeline.model_info().model_id,
                            Calibration(no_match=-1.0, strong=-0.5, measured="test"))
        runtime, client = make_client(pipeline, settings)
        try:
            found = client.get("/search", params={"q": "ribosomes proteins", "k": 6, "group": "true"}).json()
        finally:
            runtime.close()
    sims = [h["similarity"] for h in found["hits"]]
    assert len(sims) > 1 and min(sims) >= -0.5 and found["good_match"] is True
    levels = ["strong" if s == max(sims) else "good" for s in sims]
    assert [h["relevance"]["level"] for h in found["hits"]] == levels
    assert "good" in levels  # some hit below the best
    grouped = [h for d in found["documents"] for h in d["hits"]]
    assert [h["relevance"]["level"] for h in grouped] == ["strong" if h["similarity"] == max(sims) else "good"
                                                          for h in grouped]
