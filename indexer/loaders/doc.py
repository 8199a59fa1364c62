"""DOC (Word 97-2003, the binary format of [MS-DOC]) -> text, one page per stretch between explicit page or
section breaks (the file records no other pages).  The container is read with olefile; the text is where the
document's piece table (the ``Clx`` in its table stream) says: each piece a run of characters in the
``WordDocument`` stream, 8-bit (Windows-1252) or UTF-16.  No maintained pure-Python reader exists, and this is the
whole of what reading the text takes: the FIB's counts and the ``Clx`` offset, then the pieces.

Field codes are dropped and their results kept (a hyperlink's text, not its ``HYPERLINK "..."`` code), table cells
are joined with `` | ``.  The footnotes, headers, comments, endnotes and text boxes (stored after the main text)
follow the last page.  A piece that points outside the stream is left out with a note; a document saved with a
password (``fEncrypted`` / ``fObfuscated`` in the FIB) fails with "encrypted"; Word 6/95 files are refused.
"""

from __future__ import annotations

import re
import struct

from .base import Extracted, ExtractError, Limits, paged, single_page
from .ole import DESCRIPTIONS, detector, encrypted, open_ole, read_stream
from .record import Format, LoadInput

WHAT = "Word document (DOC)"
IDENT = 0xA5EC  # the FIB's wIdent
WORD97 = 101  # the lowest nFib of Word 97 and later ([MS-DOC] 2.5.2); earlier ones are Word 6/95
ENCRYPTED, OBFUSCATED, TABLE1 = 0x0100, 0x8000, 0x0200  # FibBase flags
STORIES = (3, 4, 5, 7, 8, 9, 10)  # FibRgLw97 ccpText, ccpFtn, ccpHdd, ccpAtn, ccpEdn, ccpTxbx, ccpHdrTxbx
CLX_PAIR = 33  # index of fcClx / lcbClx in FibRgFcLcb97
COMPRESSED = 0x40000000
FIELD_BEGIN, FIELD_SEPARATOR, FIELD_END = "\x13", "\x14", "\x15"
DROPPED = re.compile("[\x01\x02\x03\x04\x05\x08\x1f]")  # anchors of pictures, notes, comments; optional hyphens


def _fib(word: bytes) -> tuple[int, list[int], int, int]:
    """(flags, story lengths, fcClx, lcbClx) from the File Information Block at the start of the stream."""
    try:
        ident, nfib = struct.unpack_from("<HH", word, 0)
        if ident != IDENT:
            raise ExtractError(f"corrupted {WHAT}: its WordDocument stream does not start with a Word header")
        (flags,) = struct.unpack_from("<H", word, 0x0A)
        if flags & (ENCRYPTED | OBFUSCATED):
            raise encrypted(WHAT)
        if nfib < WORD97:
            raise ExtractError("a Word 6.0/95 document: only Word 97-2003 and later .doc files are read; save it "
                               "as .docx")
        at = 32
        (csw,) = struct.unpack_from("<H", word, at)
        at += 2 + 2 * csw
        (cslw,) = struct.unpack_from("<H", word, at)
        rglw = struct.unpack_from(f"<{cslw}I", word, at + 2)
        at += 2 + 4 * cslw
        (cb_fclcb,) = struct.unpack_from("<H", word, at)
        if cslw <= max(STORIES) or cb_fclcb <= CLX_PAIR:
            raise ExtractError(f"corrupted {WHAT}: its header is too short ({cslw} counts, {cb_fclcb} offsets)")
        fc_clx, lcb_clx = struct.unpack_from("<II", word, at + 2 + 8 * CLX_PAIR)
    except struct.error:
        raise ExtractError(f"corrupted {WHAT}: its header is cut short") from None
    return flags, [rglw[i] for i in STORIES], fc_clx, lcb_clx


def _pieces(clx: bytes) -> list[tuple[int, int, int, bool]]:
    """(first character position, last + 1, offset in the WordDocument stream, 8-bit) per piece of the Clx."""
    at = 0
    while at < len(clx) and clx[at] == 1:  # Prc: formatting, skipped
        if at + 3 > len(clx):
            break
        at += 3 + struct.unpack_from("<H", clx, at + 1)[0]
    if at + 5 > len(clx) or clx[at] != 2:
        raise ExtractError(f"corrupted {WHAT}: its piece table (Clx) is missing or damaged")
    (lcb,) = struct.unpack_from("<I", clx, at + 1)
    plc = clx[at + 5:at + 5 + lcb]
    count = (len(plc) - 4) // 12
    if count < 1:
        raise ExtractError(f"corrupted {WHAT}: its piece table (Clx) lists no text")
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    if any(a > b for a, b in zip(cps, cps[1:], strict=False)):
        raise ExtractError(f"corrupted {WHAT}: its piece table (Clx) is out of order")
    out = []
    for i in range(count):
        _, fc, _ = struct.unpack_from("<HIH", plc, 4 * (count + 1) + 8 * i)
        compressed = bool(fc & COMPRESSED)
        out.append((cps[i], cps[i + 1], (fc & ~COMPRESSED & 0x7FFFFFFF) // (2 if compressed else 1), compressed))
    return out


def _text(word: bytes, pieces, end: int, notes: list[str]) -> str:
    """The characters up to position ``end``, piece by piece.  Pieces are consecutive and never share bytes, so
    the text takes at most the stream's size: a piece table that says otherwise is damaged (not a way to make a
    small file expand)."""
    parts: list[str] = []
    bad = used = 0
    for first, last, offset, compressed in pieces:
        last = min(last, end)
        if first >= last:
            continue
        size = (last - first) * (1 if compressed else 2)
        if offset + size > len(word):
            bad += 1
            continue
        used += size
        if used > len(word):
            raise ExtractError(f"corrupted {WHAT}: its pieces of text overlap (they add up to more than the file)")
        raw = word[offset:offset + size]
        parts.append(raw.decode("cp1252", errors="replace") if compressed else raw.decode("utf-16-le", "replace"))
    if bad:
        notes.append(f"{bad} damaged piece(s) of text left out: they point past the end of the document")
    return "".join(parts)


def _fields(text: str) -> str:
    """The text with field codes dropped and field results kept (fields nest)."""
    out: list[str] = []
    stack: list[bool] = []  # per open field: whether its result (after the separator) has begun
    for piece in re.split(f"([{FIELD_BEGIN}{FIELD_SEPARATOR}{FIELD_END}])", text):
        if piece == FIELD_BEGIN:
            stack.append(False)
        elif piece == FIELD_SEPARATOR:
            if stack:
                stack[-1] = True
        elif piece == FIELD_END:
            if stack:
                stack.pop()
        elif all(stack):
            out.append(piece)
    return "".join(out)


def _clean(text: str) -> str:
    text = DROPPED.sub("", _fields(text)).replace("\x1e", "-").replace("\x0b", "\n").replace("\r", "\n")
    return text.replace("\x07\x07", "\n").replace("\x07", " | ")  # a cell ends with \x07, a row with one more


def load_doc(data: bytes, limits: Limits) -> Extracted:
    with open_ole(data, WHAT) as ole:
        word = read_stream(ole, "WordDocument", WHAT)
        flags, stories, fc_clx, lcb_clx = _fib(word)
        table_name = "1Table" if flags & TABLE1 else "0Table"
        if not ole.exists(table_name):
            raise ExtractError(f"corrupted {WHAT}: its table stream {table_name!r} is missing")
        table = read_stream(ole, table_name, WHAT)
    if fc_clx + lcb_clx > len(table) or lcb_clx == 0:
        raise ExtractError(f"corrupted {WHAT}: its piece table lies outside the table stream")
    notes: list[str] = []
    main, total = stories[0], sum(stories)
    text = _text(word, _pieces(table[fc_clx:fc_clx + lcb_clx]), total + (1 if total > main else 0), notes)
    pages = _clean(text[:main]).split("\x0c")
    rest = _clean(text[main:]).replace("\x0c", "\n").strip()
    if rest:
        pages[-1] += "\n\n" + rest
    limits.check_pages(len(pages))
    if len(pages) == 1:
        return single_page("doc", pages[0], notes)
    return paged("doc", list(enumerate(pages, 1)), len(pages), "pages", notes)


def _load(got: LoadInput) -> Extracted:
    return load_doc(got.data, got.limits)


FORMAT = Format("doc", "Word 97-2003", (".doc",), _load, page="page", mime="application/msword",
                description=DESCRIPTIONS["doc"], detect=detector("doc"))
