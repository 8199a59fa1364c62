"""What a hit's dense cosine means, per model: the "no good match" threshold and the relevance labels the search
page shows instead of raw scores (RRF, BM25, cosine).

A model's cosines live on its own scale (E5-family models put almost any two texts above 0.7), so a threshold is
measured per model, on held-out sets, by ``bench/relevance_threshold.py`` (real questions against their own
collection vs off-topic questions and nonsense strings); its figures and command are in ``docs/search.md``.  A model
without a calibration here gets no threshold and no labels: the page shows the cosine itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """One model's levels on its cosine scale: below ``no_match`` a search's best hit is as close as nonsense gets
    (the page says "no good match"); from ``strong`` the top hit was judged relevant most of the time."""

    no_match: float
    strong: float | None  # None: no level where the top hit was judged relevant often enough (or not measured)
    measured: str  # what and how (for the tooltip and the docs)

    def __post_init__(self) -> None:
        if not -1.0 <= self.no_match <= 1.0 or (self.strong is not None and not self.no_match < self.strong <= 1.0):
            raise ValueError(f"need -1 <= no_match < strong <= 1, got {self.no_match}, {self.strong}")


@dataclass(frozen=True)
class Relevance:
    """A hit's relevance for display: ``level`` strong | good | weak | unknown (an uncalibrated model) | keyword."""

    level: str
    label: str
    detail: str  # a tooltip: the number behind the label and what it is compared with


# model_id (moesearch.json) -> its calibration, from `python bench/relevance_threshold.py` (docs/search.md).
CALIBRATIONS: dict[str, Calibration] = {
    # 2026-12-07, int8 file: 1,600 real questions (SciFact test + XQuAD en/de/es/zh/ar/hi/ru, 200 each); the
    # threshold keeps >= 99% of every set's (0.2% of all flagged), and flags 64% of off-topic questions and 45% of
    # random letter strings; the top hit was judged relevant for 90% of the real questions from `strong` up.
    "multilingual-e5-moe": Calibration(no_match=0.803, strong=0.835,
                                       measured="measured on held-out SciFact and XQuAD questions"),
}


def calibration_for(model_id: str, min_similarity: float | None = None) -> Calibration | None:
    """The calibration of the model that built the index (``Stats.model_id``), its threshold replaced by
    ``min_similarity`` if given (``MOESEARCH_MIN_SIMILARITY``); None for a model never measured and no override."""
    cal = CALIBRATIONS.get(model_id)
    if min_similarity is None:
        return cal
    strong = cal.strong if cal is not None and cal.strong is not None and cal.strong > min_similarity else None
    return Calibration(min_similarity, strong, "MOESEARCH_MIN_SIMILARITY")


def relevance_label(similarity: float | None, cal: Calibration | None, score: float = 0.0,
                    best: float | None = None) -> Relevance:
    """The label of a hit with this dense cosine (None: a keyword search, whose ``score`` is BM25).

    ``best`` is the best dense cosine among the search's hits (None: this hit is the best).  The strong level is
    measured for the best hit of a search: above it that hit was judged relevant 90% of the time, while the other
    documents' best hits at the same cosine were relevant 1.6% of the time (``bench/relevance_threshold.py``,
    docs/search.md).  So only the best hit can be a strong match; the others are at most good ones."""
    if similarity is None:
        return Relevance("keyword", "keyword match", f"contains words of the query (BM25 score {score:.2f})")
    if cal is None:
        return Relevance("unknown", f"similarity {similarity:.2f}",
                         f"cosine similarity {similarity:.3f}; this model has no calibrated relevance levels")
    strong = f"strong from {cal.strong:.2f} for the best hit, " if cal.strong is not None else ""
    detail = f"cosine similarity {similarity:.3f}: {strong}no good match below {cal.no_match:.2f} ({cal.measured})"
    if cal.strong is not None and similarity >= cal.strong and (best is None or similarity >= best):
        return Relevance("strong", "strong match", detail)
    if similarity >= cal.no_match:
        return Relevance("good", "good match", detail)
    return Relevance("weak", "weak match", detail)


def best_similarity(similarities: Iterable[float | None]) -> float | None:
    """The best dense cosine among a search's hits (None: a keyword search, or no hits): ``relevance_label``'s
    ``best``."""
    return max((s for s in similarities if s is not None), default=None)


def good_match(similarities: list[float | None], cal: Calibration | None) -> bool:
    """Whether a search found anything better than nonsense: its best cosine reaches the model's threshold (always
    true for an uncalibrated model, a keyword search, and no hits at all is the caller's own case)."""
    best = best_similarity(similarities)
    return cal is None or best is None or best >= cal.no_match
