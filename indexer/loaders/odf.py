"""OpenDocument (ODF 1.x: .odt text, .ods spreadsheet, .odp presentation) -> text from the container's
``content.xml``, checked by ``zipsafe`` and parsed by lxml with entities, DTDs and the network off (libxml2's
default depth limit of 256 holds).  ODF is plain XML, so no ODF library is needed.

- ODT: a page ends at a page break: one the writer laid out (``text:soft-page-break``) or one asked for by a
  paragraph's or table's automatic style (``fo:break-before`` / ``fo:break-after``); a file with neither is one
  page.  Table rows become ``a | b | c``, footnotes and comments stay in place, page-number fields are left out.
- ODS: a page is a sheet, rows as for XLSX (``Header: value; ...``, repeated rows and columns expanded up to the
  caps, empty ones skipped).
- ODP: a page is a slide (``draw:page``), with its speaker notes.

The content is one XML document: damage in it fails the file (with the parser's message), there is no sheet or
slide to leave out alone.  A file saved with a password (its manifest lists ``manifest:encryption-data``) fails
with "encrypted".
"""

from __future__ import annotations

from .base import Extracted, ExtractError, Limits, paged
from .record import Format
from .xlsx import row_lines
from .zipsafe import open_zip

OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
P, H, S, TAB, BREAK = (f"{{{TEXT}}}{n}" for n in ("p", "h", "s", "tab", "line-break"))
FIELDS = {f"{{{TEXT}}}{n}" for n in ("page-number", "page-count")}  # placeholders ("<number>"), not text
STYLE_NAMES = (f"{{{TEXT}}}style-name", f"{{{TABLE}}}style-name")
FO = "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
PAGE_BREAK = f"{{{TEXT}}}soft-page-break"
ROW, CELL, COVERED = (f"{{{TABLE}}}{n}" for n in ("table-row", "table-cell", "covered-table-cell"))
NOTES = f"{{{PRESENTATION}}}notes"
MAX_COLUMNS = 16_384  # columns in a sheet (LibreOffice's and Excel's limit)
MAX_SPACES = 256  # one text:s element's c attribute, more is a damaged file
MIME = "application/vnd.oasis.opendocument."
KINDS = {"odt": ("text", "OpenDocument text (ODT)"), "ods": ("spreadsheet", "OpenDocument spreadsheet (ODS)"),
         "odp": ("presentation", "OpenDocument presentation (ODP)")}  # doc_type -> (body element, what it is)


def _parse(data: bytes, what: str):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ExtractError(f"corrupted {what}: its XML cannot be parsed ({str(exc)[:160]})") from None


def _content(data: bytes, limits: Limits, what: str):
    """content.xml's root, once the container passed the caps and is not encrypted."""
    with open_zip(data, limits, what) as zf:
        names = set(zf.namelist())
        if "META-INF/manifest.xml" in names:
            manifest = _parse(zf.read("META-INF/manifest.xml"), what)
            if manifest.find(f".//{{{MANIFEST}}}encryption-data") is not None:
                raise ExtractError(f"encrypted {what}: it needs a password to open; save an unprotected copy and "
                                   "ingest that")
        if "content.xml" not in names:
            raise ExtractError(f"corrupted {what}: it has no content.xml")
        return _parse(zf.read("content.xml"), what)


def _inline(node, out: list[str]) -> None:
    """A paragraph's text: spaces, tabs and line breaks as such; nested paragraphs (text boxes) as lines."""
    if node.text:
        out.append(node.text)
    for child in node:
        tag = child.tag
        if tag == S:
            out.append(" " * min(MAX_SPACES, _count(child, f"{{{TEXT}}}c")))
        elif tag == TAB:
            out.append("\t")
        elif tag == BREAK:
            out.append("\n")
        elif tag in FIELDS:
            pass
        elif tag in (P, H):
            out.append("\n")
            _inline(child, out)
            out.append("\n")
        elif isinstance(tag, str):
            _inline(child, out)
        if child.tail:
            out.append(child.tail)


def _count(node, attribute: str) -> int:
    """A repeat count (``text:c``, ``table:number-*-repeated``): 1 when missing or not a number."""
    value = node.get(attribute, "1")
    return int(value) if value.isascii() and value.isdigit() else 1


def _page_breaks(root) -> dict[str, set[str]]:
    """The automatic styles that break the page: {"before": names, "after": names}."""
    breaks: dict[str, set[str]] = {"before": set(), "after": set()}
    for style in root.iterfind(f"{{{OFFICE}}}automatic-styles/{{{STYLE}}}style"):
        for properties in style:
            for where, names in breaks.items():
                if properties.get(f"{{{FO}}}break-{where}") == "page":
                    names.add(style.get(f"{{{STYLE}}}name"))
    return breaks


def _new_page(pages: list[list[str]]) -> None:
    if any(b.strip() for b in pages[-1]):
        pages.append([])


def _blocks(node, pages: list[list[str]], breaks: dict[str, set[str]] | None = None) -> None:
    """Paragraphs and table rows of a text body into ``pages`` (a new page at each page break)."""
    breaks = breaks or {"before": set(), "after": set()}
    for child in node:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        style = next((child.get(a) for a in STYLE_NAMES if child.get(a)), None)
        if style in breaks["before"] or (tag in (P, H, ROW) and child.find(f".//{PAGE_BREAK}") is not None):
            _new_page(pages)
        if tag == PAGE_BREAK:
            _new_page(pages)
        elif tag in (P, H):
            out: list[str] = []
            _inline(child, out)
            pages[-1].append("".join(out))
        elif tag == ROW:
            cells = [" ".join(_text(p) for p in cell.iter(P, H)) for cell in child if cell.tag == CELL]
            pages[-1].append(" | ".join(c.strip() for c in cells))
        else:
            _blocks(child, pages, breaks)
        if style in breaks["after"]:
            _new_page(pages)


def _text(node) -> str:
    out: list[str] = []
    _inline(node, out)
    return "".join(out)


def _body(root, kind: str, what: str):
    body = root.find(f"{{{OFFICE}}}body/{{{OFFICE}}}{KINDS[kind][0]}")
    if body is None:
        raise ExtractError(f"corrupted {what}: its content.xml has no office:{KINDS[kind][0]} body")
    return body


def load_odt(data: bytes, limits: Limits) -> Extracted:
    what = KINDS["odt"][1]
    pages: list[list[str]] = [[]]
    root = _content(data, limits, what)
    _blocks(_body(root, "odt", what), pages, _page_breaks(root))
    limits.check_pages(len(pages))
    return paged("odt", [(n, "\n\n".join(b for b in blocks if b.strip())) for n, blocks in enumerate(pages, 1)],
                 len(pages), "pages")


def _rows(sheet, limits: Limits):
    """Each row's cell texts, repeats expanded (an empty repeated row once: a sheet's tail is one such row)."""
    for row in sheet.iter(ROW):
        cells: list[str] = []
        gap = 0  # empty cells not yet written: only a later non-empty cell needs them
        for cell in row:
            if cell.tag not in (CELL, COVERED):
                continue
            text = " ".join(_text(p).strip() for p in cell.iter(P)).strip()
            repeat = _count(cell, f"{{{TABLE}}}number-columns-repeated")
            if not text:
                gap += repeat
                continue
            room = MAX_COLUMNS - len(cells) - gap
            if room <= 0:
                break
            cells += [""] * gap + [text] * min(repeat, room)
            gap = 0
        repeat = _count(row, f"{{{TABLE}}}number-rows-repeated")
        for _ in range(min(repeat, limits.max_rows + 1) if cells else 1):
            yield cells


def load_ods(data: bytes, limits: Limits) -> Extracted:
    what = KINDS["ods"][1]
    sheets = _body(_content(data, limits, what), "ods", what).findall(f"{{{TABLE}}}table")
    limits.check_pages(len(sheets), "sheets")
    pages: list[tuple[int, str]] = []
    seen = 0
    for number, sheet in enumerate(sheets, 1):
        lines, seen = row_lines(_rows(sheet, limits), limits, seen)
        if lines:
            pages.append((number, f"Sheet: {sheet.get(f'{{{TABLE}}}name', f'Sheet{number}')}\n\n" + "\n".join(lines)))
    return paged("ods", pages, len(sheets), "sheets")


def load_odp(data: bytes, limits: Limits) -> Extracted:
    what = KINDS["odp"][1]
    slides = _body(_content(data, limits, what), "odp", what).findall(f"{{{DRAW}}}page")
    limits.check_pages(len(slides), "slides")
    pages: list[tuple[int, str]] = []
    for number, slide in enumerate(slides, 1):
        blocks: list[list[str]] = [[]]
        speaker: list[list[str]] = [[]]
        for child in slide:
            _blocks(child, speaker if child.tag == NOTES else blocks)
        text = "\n\n".join(b for page in blocks for b in page if b.strip())
        said = "\n".join(b for page in speaker for b in page if b.strip())
        pages.append((number, text + (f"\n\nSpeaker notes: {said}" if said else "")))
    return paged("odp", pages, len(slides), "slides")


def _record(doc_type: str, label: str, load, page: str) -> Format:
    kind, what = KINDS[doc_type]
    return Format(doc_type, label, (f".{doc_type}",), lambda got: load(got.data, got.limits), page=page,
                  mime=MIME + kind, description=f"an {what}", zip_mimetype=MIME + kind)


ODT = _record("odt", "OpenDocument text", load_odt, "page")
ODS = _record("ods", "OpenDocument spreadsheet", load_ods, "sheet")
ODP = _record("odp", "OpenDocument presentation", load_odp, "slide")
