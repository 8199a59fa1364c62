"""Contents pages: a leader is read as one "…" (``loaders.base.normalize``), a passage of contents entries is told
apart (``search.is_contents``), and a document's contents passages follow its other passages in a search
(``search.contents_last``, against a naive reference; end to end on a PDF manual)."""

from __future__ import annotations

import random

import pytest
from indexer_testfiles import make_pdf

from indexer import Hit
from indexer.loaders.base import normalize
from indexer.pipeline import SearchFilters, Source
from indexer.search import contents_last, is_contents

CONTENTS = "Contents\n1 Glaciers . . . . . . . . . . . . 2\n1.1 Moraine deposits ........ 2\n" \
           "1.2 Crevasse formation . . . . . . . . 3\n2 Ice cores . . . . . . . . . . . . . 4"


@pytest.mark.parametrize("raw, read", [
    ("1.1 Moraine deposits . . . . . . . . . . 2", "1.1 Moraine deposits … 2"),
    ("1.2 Crevasses.................3", "1.2 Crevasses … 3"),
    ("Preface \u00b7\u00b7\u00b7\u00b7\u00b7\u00b7 ix", "Preface … ix"),
    ("Wait.....what", "Wait … what"),
    ("and so on...", "and so on..."),  # an ellipsis is not a leader
    ("x[...] . . . y", "x[...] . . . y"),
    ("version 1.2.3.4.5", "version 1.2.3.4.5"),
])
def test_a_leader_is_read_as_one_ellipsis(raw, read):
    assert normalize(raw) == read


def test_contents_passages_are_told_apart():
    assert is_contents(CONTENTS) and is_contents(normalize(CONTENTS))
    assert not is_contents("1.1 Moraine deposits\nA moraine is debris a glacier leaves, see page 2.\nMore text.")
    assert not is_contents("Coffee … 2.50\nTea … 2.00\nCake … 3.50")  # prices, not pages
    assert not is_contents("1 Glaciers … 2\n" + "\n".join(f"line {i} of prose about ice" for i in range(8)))


def hit(doc: str, i: int, contents: bool) -> Hit:
    return Hit(text=CONTENTS if contents else f"prose {i}", source=f"{doc}.pdf", page=i, score=1.0 / (i + 1),
               matched_terms=(), doc_id=doc, chunk_index=i, id=f"{doc}-{i}")


def naive(hits: list[Hit]) -> list[Hit]:
    """Walk the ranking; at a position held by document D, place D's best remaining passage that is not a contents
    passage, or else its best remaining contents passage."""
    left = {h.doc_id: [x for x in hits if x.doc_id == h.doc_id] for h in hits}
    out = []
    for h in hits:
        mine = left[h.doc_id]
        pick = next((x for x in mine if not is_contents(x.text)), mine[0])
        mine.remove(pick)
        out.append(pick)
    return out


def test_contents_last_matches_a_naive_reference():
    rnd = random.Random(7)
    for _ in range(300):
        hits = [hit(f"d{rnd.randrange(4)}", i, rnd.random() < 0.3) for i in range(rnd.randrange(0, 15))]
        got = contents_last(hits)
        assert got == naive(hits)
        assert [h.doc_id for h in got] == [h.doc_id for h in hits]  # every document keeps its places


def test_a_title_search_shows_the_section_not_the_contents_page(pipeline):
    filler = " ".join(f"Sentence {i} says more about how ice moves and melts over the years." for i in range(12))
    pages = [CONTENTS,
             "1 Glaciers\n" + filler,
             "1.1 Moraine deposits\nA moraine is the rock and soil a glacier carries and leaves behind. " + filler,
             "1.2 Crevasse formation\nA crevasse opens where the ice is stretched faster than it can flow. " + filler,
             "2 Ice cores\nCores drilled through ice sheets hold air from past climates. " + filler]
    report = pipeline.ingest([Source.upload("glaciers.pdf", make_pdf(pages))])
    assert report.all_ok
    for mode in ("hybrid", "keyword", "dense"):  # (the test model's dense vectors know no words: any section)
        for title, page in (("Moraine deposits", 3), ("Crevasse formation", 4)):
            hits = pipeline.search(title, k=1, mode=mode, filters=SearchFilters(sources=("glaciers.pdf",)))
            assert hits and hits[0].page == (page if mode != "dense" else hits[0].page) != 1, \
                (mode, title, [(h.page, h.text[:60]) for h in hits])
    contents = pipeline.search("Contents Glaciers Moraine deposits Crevasse formation Ice cores", k=50,
                               mode="keyword")
    pages = [h.page for h in contents]
    assert 1 in pages and pages.index(1) == len(pages) - 1, pages  # still found, after the document's sections
