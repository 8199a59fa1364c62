"""Pages -> token windows with overlap, cut at paragraph / sentence / word boundaries (pure functions).

Windows are planned on the embedder's own tokenizer (no special tokens, no truncation), so a chunk of
``max_tokens`` tokens fits the model once the prefix and [CLS]/[SEP] are added.  The character spans of a
page's chunks cover the page exactly, start to end: consecutive spans overlap by about ``overlap`` tokens
(or touch when ``overlap`` is 0), so no text is ever lost and the page can be rebuilt from its chunks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .keywords import NO_SPACE

PARAGRAPH, SENTENCE, CLAUSE, WORD, INSIDE = 4, 3, 2, 1, 0
# Sentence ends: Latin; CJK full stops (。！？｡); Devanagari danda; Arabic question mark; Urdu, Myanmar, Khmer and
# Ethiopic full stops.  The ASCII ones end a sentence only before a space ("3.14", "e.g." do not); the wide ones
# also right before the next character (Chinese and Japanese put no space after them).
WIDE_SENTENCE_END = "\u3002\uff01\uff1f\uff61\u0964\u0965\u061f\u06d4\u104b\u17d4\u1362"
SENTENCE_END = ".!?" + WIDE_SENTENCE_END
CLAUSE_END = ";:\uff0c\u3001\uff1b\uff1a\u060c\u061b"  # ; : and the CJK / Arabic commas and semicolons
WIDE_CLAUSE_END = CLAUSE_END[2:]
CLOSERS = "\"')]}\u201d\u2019\u00bb\u300d\u300f\u3011\uff09"
SEGMENT_CHARS = 200_000  # a page longer than this is tokenized a stretch at a time (see iter_chunks)


@dataclass(frozen=True)
class Span:
    start: int  # char offsets into the page text
    end: int
    n_tokens: int


@dataclass(frozen=True)
class Chunk:
    index: int  # position in the document, over all pages
    page: int  # 1-based page number
    start: int  # char offsets into the page text
    end: int
    text: str
    n_tokens: int


def gap_score(text: str, prev_end: int, next_start: int) -> int:
    """How good a cut is between a token ending at ``prev_end`` and the next starting at ``next_start``.

    Without a space between them (Chinese, Japanese, Thai), a cut after a full-width full stop or comma is a
    sentence or clause boundary, one between two tokens of a script written without spaces a word boundary (the
    tokenizer's pieces are words or parts of one there), anything else inside a word."""
    gap = text[prev_end:next_start]
    k = prev_end - 1
    while k >= 0 and text[k] in CLOSERS:
        k -= 1
    if not gap:
        if k >= 0 and text[k] in WIDE_SENTENCE_END:
            return SENTENCE
        if k >= 0 and text[k] in WIDE_CLAUSE_END:
            return CLAUSE
        nxt = text[prev_end] if prev_end < len(text) else ""
        if prev_end > 0 and nxt.isalnum() and no_space(text[prev_end - 1]) and no_space(nxt):  # not before a mark
            return WORD
        return INSIDE
    newlines = gap.count("\n")
    if newlines >= 2:
        return PARAGRAPH
    if k >= 0 and text[k] in SENTENCE_END or newlines == 1:
        return SENTENCE
    if k >= 0 and text[k] in CLAUSE_END:
        return CLAUSE
    return WORD


def no_space(ch: str) -> bool:
    """Whether ``ch`` is a letter of a script written without spaces between words (Han, kana, Thai, ...)."""
    c = ord(ch)
    if c < NO_SPACE[0][0] or not any(a <= c <= b for a, b in NO_SPACE):
        return False
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"


def widen(text: str, offsets: Sequence[tuple[int, int]], i: int) -> tuple[int, int]:
    """The gap before token ``i`` with the whitespace its neighbours' offsets cover added (SentencePiece tokens'
    offsets include the space before a word: "▁world" spans " world", so the offsets alone show no gap)."""
    a, b = offsets[i - 1][1], offsets[i][0]
    while a > offsets[i - 1][0] and text[a - 1].isspace():
        a -= 1
    while b < offsets[i][1] and text[b].isspace():
        b += 1
    return a, max(a, b)


def plan_spans(text: str, offsets: Sequence[tuple[int, int]], max_tokens: int, overlap: int) -> list[Span]:
    """Plan chunk spans over one page given its tokens' char offsets (in order)."""
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"overlap must be in 0..{max_tokens // 2 - 1}, got {overlap}")
    n = len(offsets)
    if n == 0:
        return []
    starts = [s for s, _ in offsets]
    score = [PARAGRAPH] + [gap_score(text, *widen(text, offsets, i)) for i in range(1, n)]  # cut before token i
    spans: list[tuple[int, int]] = []  # token ranges [a, b)
    a = 0
    while True:
        if n - a <= max_tokens:
            spans.append((a, n))
            break
        lo, hi = a + max(1, max_tokens // 2), a + max_tokens
        b = max(range(lo, hi + 1), key=lambda j: (score[j], j))  # best boundary, latest among equals
        spans.append((a, b))
        if overlap == 0:
            a = b
            continue
        window = range(b - overlap, b)
        best = max(window, key=lambda j: (score[j], -j))  # best boundary, most overlap among equals
        a = best if score[best] > INSIDE else b - overlap
    out = []
    for k, (a, b) in enumerate(spans):
        start = 0 if k == 0 else starts[a]
        end = len(text) if k == len(spans) - 1 else starts[b]
        out.append(Span(start, end, b - a))
    return out


def token_offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    """Char offsets of ``text``'s tokens (``tokenizers.Tokenizer`` without truncation or special tokens)."""
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    out: list[tuple[int, int]] = []
    last = 0
    for s, e in offsets:  # keep them monotonic whatever the normaliser did
        s = max(s, last)
        e = max(e, s)
        out.append((s, e))
        last = s
    return out


def segments(text: str, size: int = SEGMENT_CHARS) -> Iterator[tuple[int, int]]:
    """``[start, end)`` stretches of ``text`` of at most about ``size`` chars that cover it, cut at the last
    paragraph break (else line break, space or full-width full stop) before the limit, so no token straddles a
    cut."""
    start, n = 0, len(text)
    while n - start > size:
        limit = start + size
        cut = max(text.rfind("\n\n", start + size // 2, limit), -1)
        if cut < 0:
            cut = max(text.rfind("\n", start + size // 2, limit), text.rfind(" ", start + size // 2, limit),
                      *(text.rfind(end, start + size // 2, limit) for end in WIDE_SENTENCE_END))
        cut = limit if cut < 0 else cut + 1
        yield start, cut
        start = cut
    yield start, n


def iter_chunks(pages: Iterable[tuple[int, str]], tokenizer, max_tokens: int, overlap: int) -> Iterator[Chunk]:
    """Chunks for a document's ``(page_number, text)`` pages, one at a time; indices run over the whole document.
    A long page is tokenized a segment (``SEGMENT_CHARS``) at a time, so memory does not grow with its length;
    chunks touch (no overlap) where segments meet."""
    index = 0
    for page, text in pages:
        if not text.strip():
            continue
        a = 0  # a stretch without tokens (only spaces) joins the next one, so the spans still cover the page
        for _, b in segments(text):
            part = text[a:b]
            spans = plan_spans(part, token_offsets(tokenizer, part), max_tokens, overlap)
            for span in spans:
                yield Chunk(index, page, a + span.start, a + span.end, part[span.start:span.end], span.n_tokens)
                index += 1
            if spans:
                a = b


def chunk_pages(pages: Sequence[tuple[int, str]], tokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    """Chunks for a document's ``(page_number, text)`` pages; indices run over the whole document."""
    return list(iter_chunks(pages, tokenizer, max_tokens, overlap))


def rebuild_page(pieces: Sequence[tuple[int, int, str]], whole: bool = True) -> str:
    """Text from chunks' ``(start, end, text)`` with overlaps dropped: the whole page (``whole``: the chunks
    must start at char 0), or the stretch the chunks cover; raises ValueError on a gap."""
    out: list[str] = []
    pieces = sorted(pieces)
    pos = 0 if whole or not pieces else pieces[0][0]
    for start, end, text in pieces:
        if start > pos:
            raise ValueError(f"chunks leave a gap at chars {pos}..{start}")
        if end > pos:
            out.append(text[pos - start:])
            pos = end
    return "".join(out)
