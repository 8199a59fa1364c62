"""Language-neutral keyword analysis (the BM25 mode ``multilingual``): text -> terms in every script, the terms'
stable ids, and where matched terms occur in a text (highlighting).  Pure functions, standard library only.

Segmentation, after Lucene's StandardTokenizer + CJKBigramFilter (Elasticsearch's ``cjk_bigram``):

* Scripts written with spaces between words (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari and the other
  Indic scripts, ...): a **word** is a maximal run of letters, digits and combining marks.  Python's ``\\w`` leaves
  the marks out, and Devanagari vowel signs, Arabic harakat and Thai vowels are marks: ``\\w+`` cuts हिन्दी into
  letters.  A word longer than ``PREFIX`` characters (without digits) also gives its first ``PREFIX`` characters
  as a term: truncation, the language-neutral stand-in for a stemmer (McNamee & Mayfield, "Character N-gram
  Tokenization for European Language Text Retrieval", 2004), so "searching" meets "searches", Russian "столицы"
  meets "столица", and the exact word still scores on its own term.
* Scripts written without spaces (Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar): a **run** is cut
  into characters (a base character with the combining marks after it) and gives its overlapping character
  bigrams, so 北京大学 gives 北京 京大 大学 and a query 北京 finds it without a dictionary.  A document also gives
  each character (a unigram), a query only for a one-character run (猫), so a one-character word is found while a
  longer query is matched by its bigrams alone (unigrams of a long query match nearly everything).
* Everything else (punctuation, spaces, symbols) separates.

Normalisation of each word / character: NFKC (full-width Latin, half-width katakana, ligatures), case folding
(ß -> ss), accents dropped from Latin and Greek letters and ё -> е (a query typed without them still matches),
Arabic harakat and tatweel dropped and alef forms unified, zero-width joiners and soft hyphens dropped.  No
language's stemmer and no stop words: nothing here belongs to one language, and the IDF Qdrant applies makes
frequent words weigh little.  A document's length is its positions (words + characters of runs; a truncation
shares its word's position and a bigram its first character's, as Lucene counts overlapping tokens).  Term ids
are Qdrant's (the absolute value of the signed murmur3-32 of the term's UTF-8, seed 0): the same in every process,
unlike Python's salted ``hash``.
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator

ANALYZER = "unicode-cjk-bigram-prefix5-1"  # recorded with an index: a change in a text's terms needs a new name
NO_SPACE = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1100, 0x11FF), (0x1780, 0x17FF), (0x19E0, 0x19FF),
            (0x3005, 0x3007), (0x3021, 0x3029), (0x303B, 0x303C), (0x3040, 0x30FF), (0x3130, 0x318F),
            (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF),
            (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x1B000, 0x1B2FF), (0x20000, 0x3FFFF))  # scripts without spaces
# Thai, Lao, Myanmar, Khmer: a character there is less than a syllable, so a lone bigram match (อง inside ของ) is
# too small to highlight; a highlighted stretch there spans at least this many characters.
SYLLABIC = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x19E0, 0x19FF))
SYLLABIC_MIN = 3
EXTRA_MARKS = "\u200c\u200d\u00ad\uff9e\uff9f"  # ZWNJ, ZWJ, soft hyphen, half-width (semi-)voiced sound marks
FOLD = str.maketrans({"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",  # alef forms
                      "\u0649": "\u064a", "\u0640": None, "\u0451": "\u0435",  # alef maksura -> yeh, tatweel, ё
                      "\u200c": None, "\u200d": None, "\u00ad": None,
                      **{chr(c): None for c in (*range(0x064B, 0x0660), 0x0670)}})  # Arabic harakat
ACCENTS = (0x0300, 0x036F)  # combining diacritical marks, dropped after a Latin or Greek letter (code < U+0400)
TERM_CACHE = 1 << 18
PREFIX = 5  # a word's truncation term: on XQuAD en/de/es/ru/ar/hi 4 and 5 were within 0.002 nDCG@10; 5 conflates less


def _ranges(pairs: Iterable[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in pairs)


@functools.cache
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(pieces, clusters, marks), built on first use from this Python's Unicode database (~40 ms)."""
    marks: list[tuple[int, int]] = []
    for c in (*range(0x30000), *range(0xE0100, 0xE01F0)):
        if unicodedata.category(chr(c))[0] == "M":
            if marks and marks[-1][1] == c - 1:
                marks[-1] = (marks[-1][0], c)
            else:
                marks.append((c, c))
    m = _ranges(marks) + re.escape(EXTRA_MARKS)
    ns = _ranges(NO_SPACE)
    pieces = re.compile(rf"(?P<run>(?:(?=\w)[{ns}][{m}]*)+)|(?P<word>(?:(?![{ns}])[\w{m}])+)")
    return pieces, re.compile(rf"[^{m}][{m}]*"), re.compile(f"[{m}]")


def pieces(text: str) -> Iterator[re.Match]:
    """The words (group ``word``) and no-space runs (group ``run``) of ``text``, in order."""
    return _patterns()[0].finditer(text)


def clusters(run: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each character (base + its combining marks) of a run."""
    return [m.span() for m in _patterns()[1].finditer(run)]


@functools.lru_cache(maxsize=TERM_CACHE)
def fold(piece: str) -> str:
    """A word or character as a term: NFKC, case-folded, Latin/Greek accents and Arabic diacritics dropped."""
    s = unicodedata.normalize("NFKC", piece).casefold()
    if s.isascii():
        return s
    s = unicodedata.normalize("NFD", s.translate(FOLD))
    out, base = [], 0
    for ch in s:
        c = ord(ch)
        if ACCENTS[0] <= c <= ACCENTS[1] and base < 0x0400:
            continue
        if not unicodedata.combining(ch):
            base = c
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit (unsigned), as Qdrant and fastembed hash BM25 tokens."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h, n = seed, len(data) // 4 * 4
    for i in range(0, n, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * c1) & mask
        h ^= (((k << 15) | (k >> 17)) & mask) * c2 & mask
        h = (((h << 13) | (h >> 19)) & mask) * 5 + 0xE6546B64 & mask
    if n < len(data):
        k = (int.from_bytes(data[n:], "little") * c1) & mask
        h ^= (((k << 15) | (k >> 17)) & mask) * c2 & mask
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & mask
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


@functools.lru_cache(maxsize=TERM_CACHE)
def term_id(term: str) -> int:
    """A term's id: |signed murmur3-32 of its UTF-8| (Qdrant's BM25 ids), stable across processes."""
    h = murmur3_32(term.encode("utf-8"))
    return abs(h - (1 << 32) if h >= 1 << 31 else h)


@functools.lru_cache(maxsize=TERM_CACHE)
def word_terms(word: str) -> tuple[str, ...]:
    """A word's terms: the word folded, and its first ``PREFIX`` characters when it is longer (and has no digits:
    123456 and 123457 are different numbers); () for a word that folds to nothing."""
    term = fold(word)
    if len(term) > PREFIX and not any(map(str.isdigit, term)):
        return term, term[:PREFIX]
    return (term,) if term else ()


@functools.lru_cache(maxsize=TERM_CACHE)
def word_ids(word: str) -> frozenset[int]:
    """The term ids of one word (``word_terms``)."""
    return frozenset(map(term_id, word_terms(word)))


def _run_terms(run: str, query: bool) -> tuple[list[str], int]:
    chars = [fold(run[a:b]) for a, b in clusters(run)]  # never "": a run's characters are letters
    bigrams = [a + b for a, b in zip(chars, chars[1:], strict=False)]
    return (bigrams or chars if query else chars + bigrams), len(chars)


def terms(text: str, query: bool = False) -> tuple[list[str], int]:
    """The terms of ``text`` in order (with repeats) and its length in positions.  ``query``: a run of two or more
    characters gives its bigrams only (a document's gives its characters too)."""
    out: list[str] = []
    length = 0
    for m in pieces(text):
        if m.lastgroup == "word":
            got = word_terms(m.group())
            out.extend(got)
            length += bool(got)
        else:
            got, n = _run_terms(m.group(), query)
            out.extend(got)
            length += n
    return out, length


def document_weights(text: str, k: float, b: float, avg_len: float) -> dict[int, float]:
    """BM25 document side: term id -> saturated, length-normalised term frequency (Qdrant applies the IDF)."""
    found, length = terms(text)
    counts = Counter(term_id(t) for t in found)
    norm = k * (1.0 - b + b * length / avg_len)
    return {i: tf * (k + 1.0) / (tf + norm) for i, tf in counts.items()}


def query_ids(text: str) -> list[int]:
    """BM25 query side: the distinct term ids of ``text`` (each weighs 1.0), in order of first appearance."""
    return list(dict.fromkeys(term_id(t) for t in terms(text, query=True)[0]))


def matched(text: str, wanted: set[int] | frozenset[int]) -> tuple[str, ...]:
    """Distinct stretches of ``text`` (as written there) whose terms are among ``wanted``, in order of appearance:
    whole words (by the word or its truncation), and in no-space runs the longest stretches covered by matching
    bigrams or characters (in Thai, Lao, Myanmar and Khmer only stretches of ``SYLLABIC_MIN`` characters or more)."""
    first: dict[str, str] = {}
    seen: set[str] = set()
    for m in pieces(text):
        if m.lastgroup == "word":
            word = m.group()
            if word not in seen:
                seen.add(word)
                if not wanted.isdisjoint(word_ids(word)):
                    first.setdefault(fold(word), word)
            continue
        run = m.group()
        if _patterns()[2].search(run):
            spans = clusters(run)
            chars = [fold(run[a:b]) for a, b in spans]
        else:  # no combining marks (Chinese, Japanese): a character is a code point
            spans = [(i, i + 1) for i in range(len(run))]
            chars = list(map(fold, run))
        hit = [i in wanted for i in map(term_id, chars)]
        pairs = list(map(term_id, map(operator.add, chars, chars[1:])))
        if not any(hit) and wanted.isdisjoint(pairs):
            continue
        for i, pair in enumerate(pairs):
            if pair in wanted:
                hit[i] = hit[i + 1] = True
        shortest = SYLLABIC_MIN if any(a <= ord(run[0]) <= b for a, b in SYLLABIC) else 1
        i = 0
        while i < len(hit):
            if not hit[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(hit) and hit[j + 1]:
                j += 1
            if j + 1 - i >= shortest:
                piece = run[spans[i][0]:spans[j][1]]
                first.setdefault(piece, piece)
            i = j + 1
    return tuple(first.values())


def highlight_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """``[start, end)`` of each occurrence in ``text`` of the matched terms ``terms`` (what ``Hit.matched_terms``
    holds), sorted, overlaps merged: a word term matches whole words equal to it once normalised (``Run`` and
    ``RUN`` for ``run``, not ``running``); a term in a script without spaces matches wherever it occurs in a run
    of that script (北京 inside 我在北京大学), never splitting a character from its marks."""
    words, runs = set(), []
    for term in terms:
        found = list(pieces(term)) if term else []
        if len(found) != 1 or found[0].group() != term:
            continue  # not a word or a stretch of one run: nothing the indexer matches
        if found[0].lastgroup == "word":
            words.add(fold(term))
        else:
            runs.append(term)
    spans: list[tuple[int, int]] = []
    is_mark = _patterns()[2].match
    for m in pieces(text):
        if m.lastgroup == "word":
            if words and fold(m.group()) in words:
                spans.append(m.span())
            continue
        for term in runs:
            at = text.find(term, m.start(), m.end())
            while at >= 0:
                end = at + len(term)
                if end >= m.end() or not is_mark(text, end):
                    spans.append((at, end))
                at = text.find(term, at + 1, m.end())
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged
