"""MSG (an Outlook message, [MS-OXMSG]) -> as for an .eml: page 1 is the headers and the body (plain text, else
HTML), then one page per attachment, so each attachment is a citation of its own (only text attachments are
indexed; the others are named in a note).  The container is read with olefile and the MAPI properties from its
streams (``__substg1.0_IIIITTTT``: property id, type) ourselves: the one maintained reader, extract-msg, is GPL.

An S/MIME-encrypted message (class ``IPM.Note.SMIME``) or one protected by rights management (a
``message.rpmsg`` attachment) fails with "encrypted".
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from .base import Extracted, ExtractError, Limits, paged
from .html import read_html
from .ole import DESCRIPTIONS, detector, encrypted, open_ole, read_stream
from .record import Format, LoadInput
from .text import decode_text

WHAT = "Outlook message (MSG)"
SUBJECT, MESSAGE_CLASS, SENDER, SENDER_ADDRESS = 0x0037, 0x001A, 0x0C1A, 0x0C1F
DISPLAY_TO, DISPLAY_CC, BODY, HTML = 0x0E04, 0x0E03, 0x1000, 0x1013
SUBMIT_TIME, DELIVERY_TIME, INTERNET_CPID, MESSAGE_CODEPAGE = 0x0039, 0x0E06, 0x3FDE, 0x3FFD
LONG_NAME, SHORT_NAME, DISPLAY_NAME, DATA, MIME_TAG = 0x3707, 0x3704, 0x3001, 0x3701, 0x370E
UNICODE, STRING8, BINARY, LONG, SYSTIME = 0x001F, 0x001E, 0x0102, 0x0003, 0x0040
ATTACHMENT = "__attach_version1.0_#"
TEXT_SUFFIXES = (".txt", ".text", ".md", ".csv", ".tsv", ".log", ".json", ".xml", ".yaml", ".yml", ".rst", ".ics",
                 ".vcf", ".htm", ".html")
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class Storage:
    """The properties of one storage (the message, or an attachment) of a .msg container."""

    def __init__(self, ole, prefix: list[str], names: set[str], header: int, codepage: str = "cp1252"):
        self.ole, self.prefix, self.names, self.codepage = ole, prefix, names, codepage
        self.fixed = self._fixed(header)

    def _fixed(self, header: int) -> dict[int, tuple[int, bytes]]:
        """property id -> (type, 8 value bytes) of the fixed-length properties (``__properties_version1.0``)."""
        if "__properties_version1.0" not in self.names:
            return {}
        data = read_stream(self.ole, [*self.prefix, "__properties_version1.0"], WHAT)
        out = {}
        for at in range(header, len(data) - 15, 16):
            tag, _, value = struct.unpack_from("<II8s", data, at)
            out[tag >> 16] = (tag & 0xFFFF, value)
        return out

    def string(self, prop: int) -> str:
        for kind, codec in ((UNICODE, "utf-16-le"), (STRING8, self.codepage)):
            name = f"__substg1.0_{prop:04X}{kind:04X}".lower()
            if name in self.names:
                raw = read_stream(self.ole, [*self.prefix, name], WHAT)
                return raw.decode(codec, errors="replace").split("\x00", 1)[0]
        return ""

    def binary(self, prop: int) -> bytes | None:
        name = f"__substg1.0_{prop:04X}{BINARY:04X}".lower()
        return read_stream(self.ole, [*self.prefix, name], WHAT) if name in self.names else None

    def number(self, prop: int) -> int | None:
        kind, value = self.fixed.get(prop, (0, b""))
        return struct.unpack_from("<I", value)[0] if kind == LONG else None

    def time(self, prop: int) -> str:
        kind, value = self.fixed.get(prop, (0, b""))
        if kind != SYSTIME:
            return ""
        try:
            when = FILETIME_EPOCH + timedelta(microseconds=struct.unpack_from("<Q", value)[0] // 10)
        except OverflowError:
            return ""
        return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _codepage(message: Storage) -> str:
    number = message.number(INTERNET_CPID) or message.number(MESSAGE_CODEPAGE)
    if not number:
        return "cp1252"
    name = "utf-8" if number == 65001 else f"cp{number}"
    try:
        "".encode(name)
    except LookupError:
        return "cp1252"
    return name


def _attachment(part: Storage, number: int) -> tuple[str, str | None]:
    """(name, text or None when the attachment is not text)."""
    name = part.string(LONG_NAME) or part.string(SHORT_NAME) or part.string(DISPLAY_NAME) \
        or f"attachment {number}"
    mime = part.string(MIME_TAG).lower()
    data = part.binary(DATA)
    if data is None or not (mime.startswith("text/") or name.lower().endswith(TEXT_SUFFIXES)):
        return name, None
    if mime == "text/html" or name.lower().endswith((".htm", ".html")):
        return name, read_html(data)[0]
    return name, decode_text(data)[0]


def load_msg(data: bytes, limits: Limits) -> Extracted:
    with open_ole(data, WHAT) as ole:
        entries: dict[str, set[str]] = {}  # the root's entries ("") and those of each storage in it, lower case
        for path in ole.listdir(streams=True, storages=True):
            if len(path) <= 2:
                entries.setdefault(path[0].lower() if len(path) == 2 else "", set()).add(path[-1].lower())
        message = Storage(ole, [], entries.get("", set()), header=32)
        message.codepage = _codepage(message)
        kind = message.string(MESSAGE_CLASS)
        parts = sorted(n for n in message.names if n.startswith(ATTACHMENT))
        if kind.lower().startswith("ipm.note.smime") and "multipartsigned" not in kind.lower():
            raise encrypted(f"{WHAT} (S/MIME)")
        limits.check_pages(1 + len(parts), "parts (the message and its attachments)")
        head = [f"{label}: {value}" for label, value in (
            ("From", " ".join(v for v in (message.string(SENDER), f"<{message.string(SENDER_ADDRESS)}>") if v != "<>")),
            ("To", message.string(DISPLAY_TO)), ("Cc", message.string(DISPLAY_CC)),
            ("Date", message.time(SUBMIT_TIME) or message.time(DELIVERY_TIME)), ("Subject", message.string(SUBJECT)),
        ) if value]
        body = message.string(BODY)
        if not body.strip() and (html := message.binary(HTML) or message.string(HTML).encode()):
            body = read_html(html)[0]
        if not head and not body.strip():
            raise ExtractError(f"corrupted {WHAT}: it has no headers and no body")
        pages = [(1, "\n".join(head) + "\n\n" + body)]
        notes: list[str] = []
        for number, storage in enumerate(parts, 1):
            try:
                part = Storage(ole, [storage], entries.get(storage, set()), header=8, codepage=message.codepage)
                name, text = _attachment(part, number)
            except ExtractError as exc:
                notes.append(f"attachment {number} left out: {exc}")
                continue
            if name.lower() == "message.rpmsg":
                raise encrypted(f"{WHAT} (rights-protected)")
            if text is None:
                notes.append(f"attachment {name!r} not indexed: only text attachments are")
            else:
                pages.append((number + 1, f"Attachment: {name}\n\n{text}"))
    return paged("msg", pages, 1 + len(parts), "parts", notes)


def _load(got: LoadInput) -> Extracted:
    return load_msg(got.data, got.limits)


FORMAT = Format("msg", "Outlook e-mail", (".msg",), _load, page="part", mime="application/vnd.ms-outlook",
                description=DESCRIPTIONS["msg"], detect=detector("msg"))
