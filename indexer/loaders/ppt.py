"""PPT (PowerPoint 97-2003, the binary format of [MS-PPT]) -> one page per slide, in the deck's order, with its
speaker notes.  The container is read with olefile; the ``PowerPoint Document`` stream is a tree of records
(8-byte headers: version/instance, type, length), and the text is in its text atoms (UTF-16 ``TextCharsAtom``,
8-bit ``TextBytesAtom``).  No maintained pure-Python reader exists.

The slide list (``SlideListWithText`` of the document) gives the order: per slide a ``SlidePersistAtom`` followed
by the text of its placeholders; the slide's own record (found through the persist directory) holds the text of
its other shapes and names its notes, found through the notes list and the persist directory in turn.  A file
without a slide list is read slide record by slide record.  A slide whose records are damaged is left out with a
note; a deck saved with a password (an ``EncryptedSummary`` stream, a ``CryptSession10Container``) fails with
"encrypted".
"""

from __future__ import annotations

import struct

from .base import Extracted, ExtractError, Limits, paged
from .ole import DESCRIPTIONS, detector, encrypted, open_ole, read_stream, root_names
from .record import Format, LoadInput

WHAT = "PowerPoint deck (PPT)"
HEADER = struct.Struct("<HHI")  # recVer (4 bits) + recInstance (12 bits), recType, recLen
DOCUMENT, SLIDE, SLIDE_ATOM, NOTES = 0x03E8, 0x03EE, 0x03EF, 0x03F0
SLIDE_LIST, SLIDE_PERSIST, PERSIST_DIRECTORY, CRYPT_SESSION = 0x0FF0, 0x03F3, 0x1772, 0x2F14
TEXT_CHARS, TEXT_BYTES = 0x0FA0, 0x0FA8
MAX_DEPTH = 64  # containers nest a few levels deep; a deeper tree is damaged


class Damaged(ValueError):
    pass


def _records(data: bytes, start: int, end: int):
    """(type, instance, body start, body end, is a container) of the records laid one after another."""
    at = start
    while at + HEADER.size <= end:
        ver_inst, kind, length = HEADER.unpack_from(data, at)
        body = at + HEADER.size
        if body + length > end:
            raise Damaged(f"a record at byte {at} runs past its container")
        yield kind, ver_inst >> 4, body, body + length, (ver_inst & 0xF) == 0xF
        at = body + length


def _texts(data: bytes, start: int, end: int, depth: int = 0) -> list[str]:
    """The text atoms' text in a stretch of records, containers descended."""
    if depth > MAX_DEPTH:
        raise Damaged("records nested too deep")
    out: list[str] = []
    for kind, _, body, stop, container in _records(data, start, end):
        if container:
            out += _texts(data, body, stop, depth + 1)
        elif kind in (TEXT_CHARS, TEXT_BYTES):
            raw = data[body:stop]
            text = raw.decode("utf-16-le", "replace") if kind == TEXT_CHARS else raw.decode("latin-1")
            out.append(text.replace("\r", "\n").replace("\x0b", "\n"))
    return [t for t in out if t.strip()]


def _persist_offsets(data: bytes, top: list) -> dict[int, int]:
    """persist id -> offset of its record, from every PersistDirectoryAtom (a later save's entries win)."""
    offsets: dict[int, int] = {}
    for kind, _, body, stop, _ in top:
        if kind != PERSIST_DIRECTORY:
            continue
        at = body
        while at + 4 <= stop:
            (packed,) = struct.unpack_from("<I", data, at)
            first, count = packed & 0xFFFFF, packed >> 20
            if at + 4 + 4 * count > stop:
                break
            for i, offset in enumerate(struct.unpack_from(f"<{count}I", data, at + 4)):
                offsets[first + i] = offset
            at += 4 + 4 * count
    return offsets


def _slide_list(data: bytes, top: list, which: int) -> list[tuple[int, int, list[str]]]:
    """(persist id, slide or notes id, placeholder text) per entry of the last document record's list of slides
    (``which`` 0) or of notes (2)."""
    documents = [r for r in top if r[0] == DOCUMENT and r[4]]
    if not documents:
        return []
    _, _, body, stop, _ = documents[-1]
    slides: list[tuple[int, int, list[str]]] = []
    for kind, instance, start, end, container in _records(data, body, stop):
        if kind != SLIDE_LIST or instance != which or not container:
            continue
        for child, _, at, child_end, _ in _records(data, start, end):
            if child == SLIDE_PERSIST and child_end - at >= 16:  # persistIdRef, flags, cTexts, slide / notes id
                persist, _, _, number = struct.unpack_from("<4I", data, at)
                slides.append((persist, number, []))
            elif slides:  # the text atoms (and their styles) of the slide's placeholders
                slides[-1][2].extend(_texts(data, at - HEADER.size, child_end))
    return slides


def _record_at(data: bytes, offset: int | None, kind: int) -> tuple[int, int] | None:
    """(body start, end) of the container of this type at this offset, if it is one."""
    if offset is None or offset + HEADER.size > len(data):
        return None
    ver_inst, found, length = HEADER.unpack_from(data, offset)
    body = offset + HEADER.size
    if found != kind or (ver_inst & 0xF) != 0xF or body + length > len(data):
        return None
    return body, body + length


def _slide_text(data: bytes, slide: tuple[int, int] | None, offsets: dict[int, int],
                notes: dict[int, tuple[int, list[str]]], read: set) -> list[str]:
    """The text of a slide record's shapes, then its notes (``notes``: notes id -> persist id, listed text);
    a notes record already ``read`` for another slide is not read again."""
    if slide is None:
        return []
    out = _texts(data, *slide)
    for kind, _, body, stop, _ in _records(data, *slide):
        if kind == SLIDE_ATOM and stop - body >= 20:
            (notes_id,) = struct.unpack_from("<I", data, body + 16)  # SlideAtom.notesIdRef
            persist, said = notes.get(notes_id, (None, []))
            record = _record_at(data, offsets.get(persist), NOTES) if persist is not None else None
            if record in read:
                record = None
            read.add(record)
            said = said + [t for t in (_texts(data, *record) if record else []) if t not in said]
            if said:
                out.append("Speaker notes: " + "\n".join(said))
    return out


def load_ppt(data: bytes, limits: Limits) -> Extracted:
    with open_ole(data, WHAT) as ole:
        if "encryptedsummary" in root_names(ole):
            raise encrypted(WHAT)
        stream = read_stream(ole, "PowerPoint Document", WHAT)
    top: list = []
    try:
        for record in _records(stream, 0, len(stream)):
            top.append(record)
    except Damaged:
        pass  # the records before the damage are still read
    if any(r[0] == CRYPT_SESSION for r in top):
        raise encrypted(WHAT)
    offsets = _persist_offsets(stream, top)
    try:
        listed = _slide_list(stream, top, 0)
        notes_listed = {number: (persist, texts) for persist, number, texts in _slide_list(stream, top, 2)}
    except Damaged as exc:
        raise ExtractError(f"corrupted {WHAT}: its slide list cannot be read ({exc})") from None
    if listed:
        slides = [(texts, _record_at(stream, offsets.get(persist), SLIDE)) for persist, _, texts in listed]
    else:  # no slide list: the slide records in the order they are stored
        slides = [([], (r[2], r[3])) for r in top if r[0] == SLIDE and r[4]]
    limits.check_pages(len(slides), "slides")
    pages: list[tuple[int, str]] = []
    notes: list[str] = []
    read: set[tuple[int, int]] = set()
    for number, (placeholders, record) in enumerate(slides, 1):
        if record in read:  # two slides naming one record: a damaged (or crafted) persist directory
            record = None
        elif record is not None:
            read.add(record)
        try:
            shapes = _slide_text(stream, record, offsets, notes_listed, read)
            blocks = placeholders + [t for t in shapes if t not in placeholders]
        except (Damaged, struct.error) as exc:
            notes.append(f"slide {number} left out: its records are damaged ({exc})")
            continue
        pages.append((number, "\n\n".join(blocks)))
    return paged("ppt", pages, len(slides), "slides", notes)


def _load(got: LoadInput) -> Extracted:
    return load_ppt(got.data, got.limits)


FORMAT = Format("ppt", "PowerPoint 97-2003", (".ppt", ".pps"), _load, page="slide",
                mime="application/vnd.ms-powerpoint", description=DESCRIPTIONS["ppt"], detect=detector("ppt"))
