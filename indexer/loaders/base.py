"""What every loader shares: the refusal type, the result type, the caps a file is read under, text clean-up."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

MAX_GARBAGE = 0.2  # share of unreadable characters above which a text layer is called garbled
BAD_CATEGORIES = {"Cc", "Co", "Cn", "Cs"}
GARBAGE_SLICE = 1 << 20  # characters counted at a time by garbage_ratio
OcrProgress = Callable[[int, int], None]  # (pages OCR'd so far, pages to OCR)


class ExtractError(ValueError):
    """The file cannot be indexed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Extracted:
    doc_type: str  # one of formats.DOC_TYPES
    pages: tuple[tuple[int, str], ...]  # (1-based page / slide / sheet / chapter / part number, text); empty left out
    page_count: int  # pages in the file, with or without text
    notes: tuple[str, ...] = ()
    ocr_pages: tuple[int, ...] = ()  # numbers of the pages whose text was read by OCR

    def __post_init__(self) -> None:
        numbers = {n for n, _ in self.pages}
        if not set(self.ocr_pages) <= numbers:
            raise ValueError(f"ocr_pages {sorted(set(self.ocr_pages) - numbers)} are not among the pages")


@dataclass(frozen=True)
class Limits:
    """The caps a file is read under (from ``IndexerSettings``; each message names its variable)."""

    max_pages: int  # pages, slides, sheets, chapters, e-mail parts (MOESEARCH_MAX_PAGES)
    max_rows: int  # spreadsheet / CSV rows per file (MOESEARCH_MAX_ROWS)
    max_unzipped_mb: float  # decompressed size of a ZIP container: docx/pptx/xlsx/epub (MOESEARCH_MAX_UNZIPPED_MB)
    max_zip_entries: int  # entries in a ZIP container (MOESEARCH_MAX_ZIP_ENTRIES)
    max_xml_mb: float  # what a ZIP container's markup (anything but media) unpacks to (MOESEARCH_MAX_XML_MB)
    max_image_megapixels: float  # one image or rendered page to OCR (MOESEARCH_MAX_IMAGE_MEGAPIXELS)
    ocr_seconds: float  # OCR time budget per file (MOESEARCH_OCR_SECONDS)
    ocr_languages: str  # Tesseract languages, e.g. "eng" or "eng+deu" (MOESEARCH_OCR_LANGUAGES)
    max_chars: int = 81_920_000  # characters of text from one file; streamed readers stop there (MOESEARCH_MAX_CHARS)
    text_page_chars: int = 1_000_000  # a text file's "page": up to this many characters (MOESEARCH_TEXT_PAGE_CHARS)

    def __post_init__(self) -> None:
        for name in ("max_pages", "max_rows", "max_unzipped_mb", "max_zip_entries", "max_xml_mb",
                     "max_image_megapixels", "ocr_seconds", "max_chars", "text_page_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.ocr_languages):
            raise ValueError(f"ocr_languages must look like 'eng' or 'eng+deu', got {self.ocr_languages!r}")

    @property
    def max_unzipped_bytes(self) -> int:
        return int(self.max_unzipped_mb * 1024 * 1024)

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(max_pages=settings.max_pages, max_rows=settings.max_rows,
                   max_unzipped_mb=settings.max_unzipped_mb, max_zip_entries=settings.max_zip_entries,
                   max_xml_mb=settings.max_xml_mb,
                   max_image_megapixels=settings.max_image_megapixels,
                   ocr_seconds=settings.ocr_seconds, ocr_languages=settings.ocr_languages,
                   max_chars=settings.max_chars, text_page_chars=settings.text_page_chars)

    def check_pages(self, n: int, what: str = "pages") -> None:
        if n > self.max_pages:
            raise ExtractError(f"too many {what}: {n} (the cap is {self.max_pages}, MOESEARCH_MAX_PAGES)")

    def check_chars(self, n: int) -> None:
        """Refuse a file once the text read so far passes the character cap (the reader stops there)."""
        if n > self.max_chars:
            raise ExtractError(f"too much text: more than {self.max_chars:,} characters (MOESEARCH_MAX_CHARS); split "
                               "the file or raise the cap")

    def check_rows(self, n: int) -> None:
        if n > self.max_rows:
            raise ExtractError(f"too many rows: more than {self.max_rows} (the cap is MOESEARCH_MAX_ROWS)")


# Five or more dots (or middle dots, ellipses), spaced or not: a leader.  Printed as ". . . . ." it is ~2 tokens a
# dot: a contents page's chunks were mostly dots, and each one's few titles made it the best passage for a search
# for any of them (bench/toc_passages.py).
LEADER = re.compile(r"[ \t]*(?:[.\u00b7\u2026\u2025\u22ef][ \t]*){5,}")


def normalize(text: str) -> str:
    """Unify newlines, drop NULs and trailing spaces, keep at most one blank line in a row, and write a leader (the
    dots between a title and its page number in a table of contents) as one "…" (``LEADER``)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\u00ad", "")
    text = LEADER.sub(" \u2026 ", text)
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@functools.cache
def _char_table():
    """Per code point: 1 for a non-space character, 2 more for a bad one (in ``BAD_CATEGORIES``, or U+FFFD); built
    once, so counting runs in numpy: asking ``unicodedata`` about each character took ~25 s on a 50 MB text."""
    import numpy as np

    table = np.zeros(0x110000, dtype=np.uint8)
    for c in range(0x110000):
        ch = chr(c)
        if not ch.isspace():
            table[c] = 3 if ch == "\ufffd" or unicodedata.category(ch) in BAD_CATEGORIES else 1
    return table


def garbage_ratio(text: str) -> float:
    """Share of non-space characters that are control, private-use, unassigned or replacement characters."""
    import numpy as np

    table, chars, bad = _char_table(), 0, 0
    for at in range(0, len(text), GARBAGE_SLICE):  # counted a slice at a time: 4 bytes per character
        kinds = table[np.frombuffer(text[at:at + GARBAGE_SLICE].encode("utf-32-le", "surrogatepass"), np.uint32)]
        chars += int(np.count_nonzero(kinds))
        bad += int(np.count_nonzero(kinds == 3))
    return bad / chars if chars else 0.0


def check_readable(text: str, what: str) -> None:
    ratio = garbage_ratio(text)
    if ratio > MAX_GARBAGE:
        raise ExtractError(f"{what} looks garbled: {ratio:.0%} of its characters are control, unassigned or "
                           "replacement characters (a corrupted file, or a PDF font without a Unicode map)")


def single_page(doc_type: str, text: str, notes: list[str] | tuple[str, ...] = ()) -> Extracted:
    """A one-page document (text, HTML, DOCX, ...); refuses a file with no text."""
    text = normalize(text)
    if not text:
        raise ExtractError(f"no text: the {doc_type.upper()} file contains only whitespace or markup")
    return Extracted(doc_type, ((1, text),), 1, tuple(notes))


def paged(doc_type: str, pages: list[tuple[int, str]], page_count: int, what: str,
          notes: list[str] | tuple[str, ...] = (), ocr_pages: tuple[int, ...] = ()) -> Extracted:
    """A document of numbered parts (``what``: "slides", "sheets", ...), empty parts left out."""
    kept = [(n, t) for n, t in ((n, normalize(t)) for n, t in pages) if t]
    if not kept:
        raise ExtractError(f"no text: none of its {page_count} {what} has text" if page_count else f"no {what}")
    keep = {n for n, _ in kept}
    return Extracted(doc_type, tuple(kept), page_count, tuple(notes), tuple(n for n in ocr_pages if n in keep))
