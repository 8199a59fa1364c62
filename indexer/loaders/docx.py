"""DOCX -> text: paragraphs and table rows (``a | b | c``) in document order, streamed; the container is checked
first.

``word/document.xml`` is never held as a tree: its size in text is estimated first from the inflated bytes (what is
outside the markup, counted in C a block at a time), so a file over ``MOESEARCH_MAX_CHARS`` fails in seconds; then
it is parsed with lxml's ``iterparse`` (no DTD, entities or network), one top-level paragraph or table at a time,
each dropped once read, and reading stops at the character cap.  A paragraph's text is what python-docx's
``Paragraph.text`` gives (its runs and hyperlinks' runs: text, tabs, line breaks, non-breaking hyphens).

Rows are read cell element by cell element (``w:tc``) with python-docx, not through its grid (``row.cells``),
which fails on a table whose merged cells do not line up with the row above ("no `tc` element at
grid_offset=1"): a horizontally merged cell is one cell, a vertically merged one is read where it starts.  A table
that cannot be read all the same is left out with a note."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator

from .base import Extracted, ExtractError, Limits, single_page
from .record import Format, LoadInput
from .zipsafe import open_zip

NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
W = "{" + NS + "}"
MAIN = "word/document.xml"
OFFICE_DOCUMENT = "/officeDocument"  # the package relationship type (its tail) naming the main part
BLOCK = 4 << 20  # inflated bytes scanned at a time by the size estimate
TAG = re.compile(rb"<[^>]*>")
NOT_COUNTED = b" \t\r\n" + bytes(range(0x80, 0xC0))  # spaces, and UTF-8 continuation bytes (one per character)
JOIN = 4096  # paragraphs joined into one string at a time while reading
RUN_TEXT = {W + "tab": "\t", W + "ptab": "\t", W + "cr": "\n", W + "noBreakHyphen": "-"}


def load_docx(data: bytes, limits: Limits) -> Extracted:
    with open_zip(data, limits, "DOCX") as zf:
        part = main_part(zf)
        estimate_text(zf, part, limits)
        blocks, notes = read_body(zf, part, limits)
    return single_page("docx", "\n\n".join(b for b in blocks if b.strip()), notes)


def main_part(zf: zipfile.ZipFile) -> str:
    """The main document part: the package's officeDocument relationship (``_rels/.rels``), else
    ``word/document.xml``."""
    from lxml import etree

    try:
        info = zf.getinfo("_rels/.rels")
        if info.file_size < 1 << 20:
            root = etree.fromstring(zf.read(info), etree.XMLParser(resolve_entities=False, no_network=True))
            for rel in root:
                if str(rel.get("Type", "")).endswith(OFFICE_DOCUMENT) and rel.get("TargetMode") != "External":
                    target = str(rel.get("Target", "")).lstrip("/")
                    if target in zf.NameToInfo:
                        return target
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError, ValueError, OSError):
        pass
    if MAIN not in zf.NameToInfo:
        raise ExtractError(f"corrupted DOCX: it has no {MAIN}")
    return MAIN


def estimate_text(zf: zipfile.ZipFile, part: str, limits: Limits) -> None:
    """Refuse a document whose XML holds more characters outside its markup (spaces not counted) than
    ``MOESEARCH_MAX_CHARS``, before any parsing: a block-at-a-time scan in C, seconds for 120 MB."""
    count, carry = 0, b""
    try:
        with zf.open(part) as fh:
            while block := fh.read(BLOCK):
                block = carry + block
                cut = block.rfind(b"<")
                if cut >= 0 and block.find(b">", cut) < 0:  # a tag cut by the block's end waits for the next one
                    block, carry = block[:cut], block[cut:]
                else:
                    carry = b""
                count += len(TAG.sub(b"", block).translate(None, NOT_COUNTED))
                if count > limits.max_chars:
                    raise ExtractError(f"too much text: the DOCX holds more than {limits.max_chars:,} characters "
                                       "outside its markup, over the cap (MOESEARCH_MAX_CHARS); split the file or "
                                       "raise the cap")
    except ExtractError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ExtractError(f"corrupted DOCX: {exc}") from None


def read_body(zf: zipfile.ZipFile, part: str, limits: Limits) -> tuple[list[str], list[str]]:
    """The paragraphs and table rows of the body in document order (joined a ``JOIN`` at a time, so a million
    short paragraphs are not a million strings), and notes on tables left out."""
    from lxml import etree

    blocks: list[str] = []
    pending: list[str] = []
    notes: list[str] = []
    chars = tables = 0
    try:
        with zf.open(part) as fh:
            for element in _top_level(etree.iterparse(fh, events=("end",), tag=(W + "p", W + "tbl"),
                                                      resolve_entities=False, no_network=True)):
                if element.tag == W + "p":
                    text = paragraph_text(element)
                    pending.append(text)
                    chars += len(text) + 2
                else:
                    tables += 1
                    try:
                        rows = _rows(_table(element))
                    except Exception as exc:  # one odd table: the rest of the document is still read
                        notes.append(f"table {tables} left out: it cannot be read ({type(exc).__name__}: "
                                     f"{str(exc)[:80]})")
                        rows = []
                    pending += rows
                    chars += sum(len(r) + 2 for r in rows)
                limits.check_chars(chars)
                if len(pending) >= JOIN:
                    blocks.append("\n\n".join(b for b in pending if b.strip()))
                    pending.clear()
    except etree.XMLSyntaxError as exc:
        raise ExtractError(f"corrupted DOCX: XMLSyntaxError: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ExtractError(f"corrupted DOCX: {exc}") from None
    return blocks + pending, notes


def _top_level(events) -> Iterator:
    """The body's own paragraphs and tables as each ends (one in a table cell, a text box or a nested table is
    read with what holds it); each is dropped from the tree once read, so memory stays flat."""
    body = W + "body"
    for _, element in events:
        parent = element.getparent()
        if parent is None or parent.tag != body:
            continue
        yield element
        element.clear()
        while element.getprevious() is not None:
            del parent[0]


def paragraph_text(p) -> str:
    """python-docx's ``Paragraph.text`` of a ``w:p`` element: its runs' (and hyperlinks' runs') text, tabs and
    breaks (a page or column break adds nothing)."""
    out: list[str] = []
    for run in p.iterchildren(W + "r", W + "hyperlink"):
        for item in (run.iterchildren(W + "r") if run.tag == W + "hyperlink" else (run,)):
            for child in item:
                tag = child.tag
                if tag == W + "br":
                    if child.get(W + "type") in (None, "textWrapping"):
                        out.append("\n")
                elif tag == W + "t":
                    out.append(child.text or "")
                elif tag in RUN_TEXT:
                    out.append(RUN_TEXT[tag])
    return "".join(out)


def _table(element):
    """A python-docx ``Table`` over a copy of this ``w:tbl`` element."""
    from docx.oxml.parser import parse_xml
    from docx.table import Table
    from lxml import etree

    return Table(parse_xml(etree.tostring(element)), None)


def _rows(table) -> list[str]:
    """``a | b | c`` per row, from the row's own cells (a vertically merged cell's continuations are empty)."""
    from docx.table import _Cell

    return [" | ".join(_Cell(tc, table).text.strip() for tc in tr.tc_lst if tc.vMerge != "continue")
            for tr in table._tbl.tr_lst]


def _load(got: LoadInput) -> Extracted:
    return load_docx(got.data, got.limits)


FORMAT = Format("docx", "Word", (".docx",), _load, page="file",
                mime="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                description="a Word document (DOCX)", zip_entry="word/document.xml")
