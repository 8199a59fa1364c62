"""Bytes -> pages of text, by sniffed type: PDF (pypdf, page by page), text, Markdown, HTML, DOCX.

Every refusal is an ``ExtractError`` whose message says what is wrong with the file and, where there is
one, what to do about it.  Nothing here touches the store.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

from .sniff import sniff, suffix_type

log = logging.getLogger(__name__)
MAX_GARBAGE = 0.2  # share of unreadable characters above which a text layer is called garbled
BAD_CATEGORIES = {"Cc", "Co", "Cn", "Cs"}
BLOCK_TAGS = ("p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article",
              "header", "footer", "main", "aside", "nav", "pre", "blockquote", "dl", "dt", "dd", "figure",
              "figcaption", "title", "hr", "form", "fieldset", "address")


class ExtractError(ValueError):
    """The file cannot be indexed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Extracted:
    doc_type: str  # pdf | txt | md | html | docx
    pages: tuple[tuple[int, str], ...]  # (1-based page number, text), pages without text left out
    page_count: int  # pages in the file, with or without text
    notes: tuple[str, ...] = ()


def normalize(text: str) -> str:
    """Unify newlines, drop NULs and trailing spaces, keep at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").replace("\u00ad", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def garbage_ratio(text: str) -> float:
    """Share of non-space characters that are control, private-use, unassigned or replacement characters."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    bad = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in BAD_CATEGORIES)
    return bad / len(chars)


def check_readable(text: str, what: str) -> None:
    ratio = garbage_ratio(text)
    if ratio > MAX_GARBAGE:
        raise ExtractError(f"{what} looks garbled: {ratio:.0%} of its characters are control, unassigned or "
                           "replacement characters (a corrupted file, or a PDF font without a Unicode map)")


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExtractError(f"broken UTF-16 text at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ExtractError(f"not UTF-8 text: byte 0x{bad:02x} at offset {exc.start} is not valid UTF-8 (probably "
                           "Latin-1/Windows-1252); re-save the file as UTF-8") from None


class _PdfDamage(logging.Handler):
    """pypdf recovers from damaged data with a logged warning and may silently drop text.  This handler (on the
    ``pypdf`` logger, which stops propagating) collects those warnings for the thread that is reading a PDF and
    passes every other record on to the root logger as usual."""

    SERIOUS = ("decompress", "invalid elementary object", "not defined", "ended unexpectedly", "does not match actual")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        found = getattr(self.local, "found", None)
        if found is None:
            root = logging.getLogger()
            if record.levelno >= root.getEffectiveLevel():
                root.handle(record)
        elif any(s in record.getMessage().lower() for s in self.SERIOUS):
            found.append(record.getMessage()[:160])


_DAMAGE = _PdfDamage()
_PYPDF = logging.getLogger("pypdf")
_PYPDF.setLevel(logging.WARNING)
_PYPDF.addHandler(_DAMAGE)
_PYPDF.propagate = False


def read_pdf(data: bytes) -> tuple[list[tuple[int, str]], int, list[str]]:
    _DAMAGE.local.found = found = []
    try:
        return _read_pdf(data, found)
    finally:
        _DAMAGE.local.found = None


def _read_pdf(data: bytes, damage: list[str]) -> tuple[list[tuple[int, str]], int, list[str]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    notes: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data), strict=True)
    except Exception as strict_error:  # pypdf raises many types for broken files
        if b"%%EOF" not in data[-2048:]:
            raise ExtractError(f"truncated PDF: the end-of-file marker is missing ({strict_error})") from None
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            len(reader.pages)
        except Exception as exc:
            raise ExtractError(f"corrupted PDF: {str(strict_error or exc)[:120]}") from None
        notes.append(f"repaired damaged PDF structure ({str(strict_error)[:120]})")
    if damage:
        raise ExtractError(f"corrupted PDF: damaged objects ({damage[0][:100]})")
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise ExtractError(f"encrypted PDF with an unsupported cipher: {exc}") from None
        if not ok:
            raise ExtractError("encrypted PDF: it needs a password to open; save an unprotected copy and ingest "
                               "that")
    try:
        n_pages = len(reader.pages)
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError) as exc:
        raise ExtractError(f"corrupted PDF: cannot read its page tree ({exc})") from None
    pages: list[tuple[int, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for number in range(1, n_pages + 1):
            try:
                text = reader.pages[number - 1].extract_text() or ""
            except Exception as exc:
                raise ExtractError(f"corrupted PDF: page {number} cannot be read ({type(exc).__name__}: "
                                   f"{str(exc)[:120]})") \
                    from None
            if damage:
                raise ExtractError(f"corrupted PDF: page {number} has damaged data ({damage[0][:100]}); its text "
                                   "would be incomplete")
            text = normalize(text)
            if text:
                pages.append((number, text))
    if not pages:
        raise ExtractError(f"no text layer: none of its {n_pages} page(s) has extractable text (a scanned PDF? "
                           "run OCR on it first, e.g. ocrmypdf)" if n_pages else "PDF has no pages")
    if len(pages) < n_pages:
        notes.append(f"{n_pages - len(pages)} of {n_pages} pages have no text layer (images only?)")
    return pages, n_pages, notes


def read_html(data: bytes) -> tuple[str, list[str]]:
    from bs4 import BeautifulSoup, NavigableString

    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(data, "html.parser")
    if getattr(soup, "contains_replacement_characters", False):
        notes.append("some characters could not be decoded and were replaced")
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]):
        if tag.name == "head":
            title = tag.find("title")
            if title is not None:
                tag.insert_before(NavigableString(title.get_text(" ", strip=True) + "\n\n"))
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before(NavigableString("\n\n"))
        tag.insert_after(NavigableString("\n\n"))
    text = soup.get_text()
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines), notes


def read_docx(data: bytes) -> str:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractError(f"corrupted DOCX: {exc}") from None
    except Exception as exc:  # lxml errors for damaged XML parts
        raise ExtractError(f"corrupted DOCX: {type(exc).__name__}: {exc}") from None
    blocks = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(b for b in blocks if b.strip())


def extract(data: bytes, name: str) -> Extracted:
    """Pages of text from a file's bytes; ``name`` (its file name) is only a hint for the type."""
    if not data:
        raise ExtractError("empty file (0 bytes)")
    found = sniff(data)
    claimed = suffix_type(name)
    suffix = PurePath(name).suffix.lower() or "(no extension)"
    notes: list[str] = []
    if found.kind == "binary":
        if claimed:
            raise ExtractError(f"named {suffix} but the content is {found.description}, not a {claimed.upper()} file")
        raise ExtractError(f"unsupported file type: {found.description}")
    kind = "html" if found.kind == "text" and claimed == "html" else found.kind  # an HTML fragment
    expected = {"pdf": "pdf", "docx": "docx", "html": "html", "txt": "text", "md": "text"}
    if claimed and expected[claimed] != kind:
        notes.append(f"named {suffix} but the content is {found.description}; indexed as such")
    elif claimed is None:
        notes.append(f"unsupported extension {suffix}; the content is {found.description}, indexed as such")
    if kind == "pdf":
        pages, n_pages, more = read_pdf(data)
        doc_type = "pdf"
        notes += more
    else:
        if kind == "docx":
            text, doc_type = read_docx(data), "docx"
        elif kind == "html":
            text, more = read_html(data)
            doc_type = "html"
            notes += more
        else:
            text = decode_text(data)
            doc_type = "md" if claimed == "md" else "txt"
        text = normalize(text)
        if not text:
            raise ExtractError(f"no text: the {doc_type.upper()} file contains only whitespace or markup")
        pages, n_pages = [(1, text)], 1
    check_readable("\n".join(t for _, t in pages), "the text" if doc_type != "pdf" else "the PDF's text layer")
    return Extracted(doc_type, tuple(pages), n_pages, tuple(notes))
