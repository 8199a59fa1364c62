"""One result per document: ``group_by_document`` against a naive reference, the dense cosine every embedded search
puts on its hits, and the relevance levels built on it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from indexer import (
    Calibration,
    DocumentHits,
    Hit,
    calibration_for,
    good_match,
    group_by_document,
    relevance_label,
)
from indexer.relevance import CALIBRATIONS


def make_hits(rnd: random.Random, n: int, docs: int) -> list[Hit]:
    """``n`` hits over ``docs`` documents, best (highest score) first, as a search returns them."""
    scores = sorted(rnd.sample(range(10_000), n), reverse=True)
    return [Hit(text=f"t{i}", source=f"d{d}.txt", page=1, score=s / 10_000, matched_terms=(), doc_id=f"d{d}",
                chunk_index=i, doc_type="txt", id=f"h{i}", similarity=rnd.uniform(0.5, 0.95))
            for i, (s, d) in enumerate(zip(scores, [rnd.randrange(docs) for _ in range(n)], strict=True))]


def naive(hits: list[Hit], passages: int, limit: int | None) -> list[tuple[str, list[str], int]]:
    """Documents by their best score, descending; each with its hits by score, descending, cut to ``passages``."""
    docs = {h.doc_id for h in hits}
    best = {d: max(h.score for h in hits if h.doc_id == d) for d in docs}
    order = sorted(docs, key=lambda d: -best[d])[:limit]
    out = []
    for d in order:
        mine = sorted((h for h in hits if h.doc_id == d), key=lambda h: -h.score)
        out.append((d, [h.id for h in mine[:passages]], len(mine)))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_grouping_matches_the_naive_reference(seed):
    rnd = random.Random(seed)
    hits = make_hits(rnd, rnd.randint(1, 60), rnd.randint(1, 15))
    passages, limit = rnd.randint(1, 4), rnd.choice([None, 1, 3, 10])
    got = group_by_document(hits, passages=passages, limit=limit)
    assert [(g.doc_id, [h.id for h in g.hits], g.matched) for g in got] == naive(hits, passages, limit)
    for g in got:
        assert g.best is g.hits[0] and g.source == f"{g.doc_id}.txt" and g.doc_type == "txt"
        assert g.similarity == max(h.similarity for h in g.hits)


def test_grouping_rejects_bad_arguments_and_empty_results():
    assert group_by_document([]) == []
    with pytest.raises(ValueError, match="passages"):
        group_by_document([], passages=0)
    with pytest.raises(ValueError, match="limit"):
        group_by_document([], limit=0)
    with pytest.raises(ValueError, match="1..matched"):
        DocumentHits("d", "d.txt", "txt", (), 0)


def test_relevance_levels_follow_the_calibration():
    cal = Calibration(no_match=0.8, strong=0.86, measured="test")
    assert [relevance_label(s, cal).level for s in (0.9, 0.86, 0.85, 0.8, 0.79)] == \
        ["strong", "strong", "good", "good", "weak"]
    # strong is measured for a search's best hit: any other hit is at most a good match
    assert [relevance_label(s, cal, best=0.95).level for s in (0.95, 0.9, 0.86, 0.8, 0.79)] == \
        ["strong", "good", "good", "good", "weak"]
    assert "strong from 0.86 for the best hit" in relevance_label(0.9, cal, best=0.95).detail
    assert relevance_label(None, cal, score=3.5).label == "keyword match"
    assert relevance_label(0.83, None).label == "similarity 0.83"  # an uncalibrated model: the cosine itself
    assert good_match([0.7, 0.81, None], cal) and not good_match([0.7, 0.79], cal)
    assert good_match([0.1], None) and good_match([None, None], cal)
    with pytest.raises(ValueError, match="no_match < strong"):
        Calibration(no_match=0.9, strong=0.8, measured="test")


def test_a_model_without_calibration_has_no_threshold_unless_set():
    assert calibration_for("a model never measured") is None
    set_by_hand = calibration_for("a model never measured", 0.5)  # MOESEARCH_MIN_SIMILARITY
    assert set_by_hand.no_match == 0.5 and set_by_hand.strong is None
    assert [relevance_label(s, set_by_hand).level for s in (0.99, 0.5, 0.49)] == ["good", "good", "weak"]
    for model_id, cal in CALIBRATIONS.items():  # an override keeps a calibrated strong level only above it
        assert calibration_for(model_id) is cal
        assert calibration_for(model_id, cal.strong).strong is None
        assert calibration_for(model_id, -1.0).strong == cal.strong


@pytest.fixture
def indexed(pipeline, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Proteins fold into shapes that decide what they do in the cell. " * 12)
    (docs / "b.txt").write_text("Solar wind and magnetic storms disturb radio links and power grids. " * 12)
    assert pipeline.ingest([docs]).ok == 2
    return pipeline


def test_hits_carry_the_dense_cosine_in_every_embedded_mode(indexed):
    dense = {h.id: h for h in indexed.search("protein shapes in the cell", k=50, mode="dense")}
    assert dense and all(h.similarity == h.score for h in dense.values())  # dense: the store's score is the cosine
    hybrid = indexed.search("protein shapes in the cell", k=50, mode="hybrid")
    assert len({h.doc_id for h in hybrid}) == 2
    for h in hybrid:  # RRF scores, cosines recomputed from the stored vectors: the same as dense search's
        assert h.similarity == pytest.approx(dense[h.id].similarity, abs=2e-3)
        assert h.score != pytest.approx(h.similarity, abs=1e-3)
    assert np.all([h.similarity <= 1.0 + 1e-5 for h in hybrid])
    assert all(h.similarity is None for h in indexed.search("protein", k=5, mode="keyword"))
    groups = group_by_document(hybrid, passages=3)
    assert len(groups) == 2 and all(1 <= len(g.hits) <= 3 < g.matched for g in groups)
