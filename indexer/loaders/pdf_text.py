"""A PDF page's text layer, read well: PDFium's text or pypdf's, whichever keeps the words apart, cleaned up.

pypdf decides that a gap in a ``TJ`` array is a space when it is over half the font's declared space width; fonts
without a usable space glyph (the subset Type0 fonts of LaTeX/Sphinx manuals such as Debian's policy) make it run
the words of whole lines together ("groupallocateddynamicallyanddifferentlyoneachsystem").  PDFium places spaces
from the glyph positions and keeps them.  ``runon_rate`` is the one measure of that (the loader and
``bench/pdf_text.py`` share it); ``better`` picks a page's text from the two engines by it.

Clean-up of the chosen text: ligature code points (U+FB00-FB06) become their letters (NFKC for those only), words
hyphenated at a line end are joined when the continuation is lowercase (PDFium marks such a hyphen with U+FFFE), and
``drop_repeated_lines`` leaves out running headers and footers: lines at the top or bottom of most pages.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict

from .base import garbage_ratio, normalize

RUNON_LETTERS = 18  # a word longer than this (letters, split at lower->upper case changes) is counted as a run-on
GOOD_ENOUGH = 0.01  # a page whose PDFium text has a ``quality`` up to this is kept without asking pypdf
MIN_SHARE = 0.5  # a text with under half the letters of the other engine's has lost text: the other one wins
REPEATED_SHARE = 0.6  # a line at the top/bottom of this share of the pages (or of the odd or even pages) is dropped
REPEATED_MIN_PAGES = 4  # ... in documents of at least this many pages with text
EDGE_LINES = 3  # how many lines at each end of a page can be a header or a footer

# Scripts that separate words with spaces (Latin, Greek, Cyrillic): a long letter run there is words run together.
# Chinese, Japanese, Thai ... write no spaces, so their letters are not counted.
_WORD = re.compile(r"[A-Za-z\u00C0-\u024F\u0370-\u03FF\u0400-\u052F]+")
_LOWER, _UPPER = r"a-z\u00DF-\u00F6\u00F8-\u00FF\u0430-\u045F", r"A-Z\u00C0-\u00D6\u00D8-\u00DE\u0400-\u042F"
_CAMEL = re.compile(f"(?<=[{_LOWER}])(?=[{_UPPER}])")
_LIGATURES = {cp: unicodedata.normalize("NFKC", chr(cp)) for cp in range(0xFB00, 0xFB07)}
_PDFIUM_HYPHEN = re.compile(r"\ufffe\n?(.?)", re.S)  # PDFium: a hyphen at a line end, the line break removed
_LINE_END_HYPHEN = re.compile(r"(?<=[^\W\d_])-\n([^\W\d_])")
_DIGITS = re.compile(r"\d+")


def runon_counts(text: str) -> tuple[int, int]:
    """(words longer than ``RUNON_LETTERS`` letters, words) of ``text``; a word is a run of letters of a script
    that writes spaces, split where a lowercase letter meets an uppercase one (``installPackage`` is two)."""
    runons = words = 0
    for token in _WORD.findall(text):
        for part in _CAMEL.split(token):
            words += 1
            runons += len(part) > RUNON_LETTERS
    return runons, words


def runon_rate(text: str) -> float:
    """Share of the words of ``text`` that are run-ons (``runon_counts``); 0.0 for a text without words.  Real
    words this long are rare (measured on 23 Debian PDFs with PDFium's text: under 0.6% of the words of a
    file, identifiers such as ``separateanswersheet``); pypdf's text of the affected files has 5-10%."""
    runons, words = runon_counts(text)
    return runons / words if words else 0.0


def quality(text: str) -> float:
    """Lower is better: run-on words plus unreadable characters, as shares."""
    return runon_rate(text) + garbage_ratio(text)


def letters(text: str) -> int:
    return sum(1 for c in text if c.isalnum())


def better(pdfium_text: str, pypdf_text: str) -> str:
    """Which engine's text of a page to keep, "pdfium" or "pypdf": the one with most of the page's letters (under
    ``MIN_SHARE`` of the other's means text was lost), then the lower ``quality``; PDFium on a tie."""
    a, b = letters(pdfium_text), letters(pypdf_text)
    if a < MIN_SHARE * b:
        return "pypdf"
    if b < MIN_SHARE * a:
        return "pdfium"
    return "pypdf" if quality(pypdf_text) < quality(pdfium_text) else "pdfium"


def clean(text: str) -> str:
    """Newlines unified (``base.normalize``), ligatures spelled out, words hyphenated at a line end joined when
    the continuation is lowercase ("dis-\\ntribution" -> "distribution"; "US-\\nASCII" keeps its hyphen)."""
    text = normalize(text).translate(_LIGATURES)
    text = _PDFIUM_HYPHEN.sub(lambda m: m.group(1) if m.group(1).islower() else "-" + m.group(1), text)
    return _LINE_END_HYPHEN.sub(lambda m: m.group(1) if m.group(1).islower() else m.group(0), text)


def _key(line: str) -> str:
    """A line as compared across pages: page numbers (any digits) and spacing do not count."""
    return " ".join(_DIGITS.sub("#", line).lower().split())


def _edges(lines: list[str]) -> tuple[list[int], list[int]]:
    """Indexes of the first and of the last ``EDGE_LINES`` non-blank lines: where headers and footers stand."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return filled[:EDGE_LINES], filled[-EDGE_LINES:]


def repeated_lines(pages: list[tuple[int, str]]) -> tuple[set[str], set[str]]:
    """(keys of header lines, keys of footer lines): lines that stand among the first (last) ``EDGE_LINES`` lines
    of at least ``REPEATED_SHARE`` of the pages, or of the odd or the even pages (books alternate their running
    heads), and of at least 3 pages; none for documents of fewer than ``REPEATED_MIN_PAGES`` pages."""
    if len(pages) < REPEATED_MIN_PAGES:
        return set(), set()
    found: tuple[set[str], set[str]] = (set(), set())
    groups = {"all": [n for n, _ in pages], "odd": [n for n, _ in pages if n % 2], "even": [n for n, _ in pages
                                                                                             if n % 2 == 0]}
    for zone in (0, 1):
        seen: dict[str, set[int]] = defaultdict(set)
        for number, text in pages:
            lines = text.split("\n")
            for i in _edges(lines)[zone]:
                seen[_key(lines[i])].add(number)
        for key, numbers in seen.items():
            for group in groups.values():
                count = len(numbers.intersection(group))
                if count >= 3 and count >= REPEATED_SHARE * len(group):
                    found[zone].add(key)
                    break
    return found


def drop_repeated_lines(pages: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[str]]:
    """``pages`` without their running headers and footers (``repeated_lines``, taken only from the ends of a
    page), each kept where it first appears so that its text stays searchable once; and the lines dropped (one
    example of each)."""
    zones = repeated_lines(pages)
    if not zones[0] and not zones[1]:
        return pages, []
    first: set[str] = set()
    dropped: dict[str, str] = {}
    kept: list[tuple[int, str]] = []
    for number, text in pages:
        lines = text.split("\n")
        drop = set()
        top, bottom = _edges(lines)
        for i in sorted(set(top) | set(bottom)):
            key = _key(lines[i])
            if (i in top and key in zones[0]) or (i in bottom and key in zones[1]):
                if key in first:
                    drop.add(i)
                    dropped.setdefault(key, lines[i].strip())
                first.add(key)
        text = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip()
        if text:
            kept.append((number, text))
    return kept, list(dropped.values())
