from __future__ import annotations

import random
from pathlib import Path

import pytest
from indexer_testfiles import sentences
from tokenizers import Tokenizer

from indexer.chunking import PARAGRAPH, SENTENCE, WORD, chunk_pages, gap_score, plan_spans, rebuild_page, token_offsets


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    t = Tokenizer.from_file(str(Path(tiny_model_dir) / "tokenizer.json"))
    t.no_truncation()
    t.no_padding()
    return t


def _texts():
    rnd = random.Random(3)
    paragraphs = ["\n\n".join(sentences(rnd.randint(1, 6), seed=s) for s in range(rnd.randint(1, 8)))
                  for _ in range(6)]
    return paragraphs + [
        "word " * 500,  # no sentence ends at all
        "x" * 3000,  # one huge token run: must cut inside it
        "Short.",
        "  leading and trailing whitespace.  \n\n",
        "Line one\nline two\nline three. " * 40,
        "Ünïcödé téxt with accents — and dashes… «quotes». " * 30,
    ]


@pytest.mark.parametrize("max_tokens,overlap", [(32, 0), (32, 8), (64, 15), (128, 32)])
def test_spans_cover_the_text_exactly_within_the_token_budget(tok, max_tokens, overlap):
    for text in _texts():
        spans = plan_spans(text, token_offsets(tok, text), max_tokens, overlap)
        assert spans[0].start == 0 and spans[-1].end == len(text)
        for a, b in zip(spans, spans[1:], strict=False):
            assert b.start <= a.end  # overlap or touch: no gap, so no lost text
            assert b.start > a.start  # progress
            if overlap == 0:
                assert b.start == a.end
        assert rebuild_page([(s.start, s.end, text[s.start:s.end]) for s in spans]) == text
        for s in spans:
            assert 1 <= s.n_tokens <= max_tokens
            # the naive reference: re-tokenising the chunk alone gives (about) the planned count
            alone = len(tok.encode(text[s.start:s.end], add_special_tokens=False).ids)
            assert alone <= max_tokens + 2


def test_overlap_is_close_to_the_requested_size(tok):
    text = sentences(200, seed=1)
    offsets = token_offsets(tok, text)
    spans = plan_spans(text, offsets, 64, 16)
    starts = [s for s, _ in offsets]
    for a, b in zip(spans, spans[1:], strict=False):
        shared = sum(1 for s in starts if b.start <= s < a.end)
        assert 1 <= shared <= 16


def test_cuts_prefer_sentence_and_paragraph_boundaries(tok):
    text = "\n\n".join(sentences(8, seed=s) for s in range(10))
    spans = plan_spans(text, token_offsets(tok, text), 96, 0)
    assert len(spans) > 3
    for s in spans[:-1]:
        assert text[s.start:s.end].rstrip().endswith("."), repr(text[s.start:s.end][-30:])


def test_gap_scores():
    text = "One. Two\n\nThree four,five\nsix"
    assert gap_score(text, 4, 5) == SENTENCE
    assert gap_score(text, 8, 10) == PARAGRAPH
    assert gap_score(text, 15, 16) == WORD
    assert gap_score(text, 25, 26) == SENTENCE  # a line break
    assert gap_score(text, 20, 20) == 0


def test_chunk_pages_keeps_pages_and_global_indices(tok):
    pages = [(1, sentences(30, seed=1)), (2, "   "), (3, sentences(5, seed=2))]
    chunks = chunk_pages(pages, tok, 40, 8)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.page for c in chunks} == {1, 3}
    for page, text in pages:
        mine = [(c.start, c.end, c.text) for c in chunks if c.page == page]
        if mine:
            assert rebuild_page(mine) == text


def test_empty_and_invalid(tok):
    assert plan_spans("", [], 32, 4) == []
    assert chunk_pages([(1, "")], tok, 32, 4) == []
    with pytest.raises(ValueError, match="overlap"):
        plan_spans("a b", [(0, 1), (2, 3)], 32, 16)
    with pytest.raises(ValueError, match="gap"):
        rebuild_page([(0, 3, "abc"), (5, 6, "f")])
