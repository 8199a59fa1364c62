"""Legacy and open office fixtures, made here: an OLE2 compound-file writer (no maintained Python library writes
arbitrary OLE2 files; olefile reads what this writes) and, on it, minimal Word 97 (.doc), PowerPoint 97 (.ppt) and
Outlook (.msg) files laid out as [MS-DOC], [MS-PPT] and [MS-OXMSG] describe; Excel 97 files from xlwt; OpenDocument
files as the ZIP of XML they are; password-protected OOXML files from msoffcrypto-tool."""

from __future__ import annotations

import io
import struct
import zipfile

SECTOR, MINI, CUTOFF = 512, 64, 4096
END, FREE, FATSECT, NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
STREAM, STORAGE, ROOT = 2, 1, 5


def _entry(name: str, kind: int, right: int, child: int, start: int, size: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\x00\x00" if name else b""
    return struct.pack("<64sHBBIII16sIQQIII", raw, len(raw), kind, 1 if kind else 0, NOSTREAM, right, child,
                       bytes(16), 0, 0, 0, start, size, 0)


def make_ole(streams: dict[str, bytes]) -> bytes:
    """An OLE2 file (version 3, 512-byte sectors) holding these streams; "a/b" is stream b in storage a.  Streams
    under 4096 bytes go to the mini stream, as the format requires."""
    nodes = [{"name": "Root Entry", "kind": ROOT, "kids": [], "data": b""}]
    index = {"": 0}
    for path, data in streams.items():
        parts = path.split("/")
        parent = 0
        for depth, part in enumerate(parts):
            key = "/".join(parts[:depth + 1])
            if key not in index:
                leaf = depth == len(parts) - 1
                index[key] = len(nodes)
                nodes.append({"name": part, "kind": STREAM if leaf else STORAGE, "kids": [],
                              "data": data if leaf else b""})
                nodes[parent]["kids"].append(index[key])
            parent = index[key]
    fat: list[int] = []
    sectors: list[bytes] = []

    def place(data: bytes) -> int:
        if not data:
            return END
        count = -(-len(data) // SECTOR)
        start = len(fat)
        fat.extend([*range(start + 1, start + count), END])
        sectors.append(data.ljust(count * SECTOR, b"\x00"))
        return start

    mini, minifat = bytearray(), []
    for node in nodes[1:]:
        data = node["data"]
        if node["kind"] != STREAM or not data:
            node["start"] = END if node["kind"] == STREAM else 0
        elif len(data) < CUTOFF:
            count = -(-len(data) // MINI)
            node["start"] = len(minifat)
            minifat.extend([*range(len(minifat) + 1, len(minifat) + count), END])
            mini += data.ljust(count * MINI, b"\x00")
        else:
            node["start"] = place(data)
    nodes[0]["start"], nodes[0]["size"] = place(bytes(mini)), len(mini)
    minifat_start = place(struct.pack(f"<{len(minifat)}I", *minifat)) if minifat else END
    minifat_sectors = -(-len(minifat) * 4 // SECTOR)
    right = {kid: kids[i + 1] for n in nodes for kids in [n["kids"]] for i, kid in enumerate(kids[:-1])}
    directory = b"".join(
        _entry(n["name"], n["kind"], right.get(i, NOSTREAM), n["kids"][0] if n["kids"] else NOSTREAM,
               n.get("start", END), n.get("size", len(n["data"]))) for i, n in enumerate(nodes))
    directory += _entry("", 0, NOSTREAM, NOSTREAM, 0, 0) * (-len(nodes) % 4)
    directory_start = place(directory)
    fat_sectors = 1
    while len(fat) + fat_sectors > fat_sectors * (SECTOR // 4):
        fat_sectors += 1
    fat_start = len(fat)
    fat.extend([FATSECT] * fat_sectors)
    fat.extend([FREE] * (fat_sectors * (SECTOR // 4) - len(fat)))
    difat = [*range(fat_start, fat_start + fat_sectors)] + [FREE] * (109 - fat_sectors)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII109I", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", bytes(16), 0x3E, 3,
                         0xFFFE, 9, 6, bytes(6), 0, fat_sectors, directory_start, 0, CUTOFF, minifat_start,
                         minifat_sectors, END, 0, *difat)
    return header + b"".join(sectors) + struct.pack(f"<{len(fat)}I", *fat)


# --- Word 97 -------------------------------------------------------------------------------------------------
def make_doc(text: str, *, split: int | None = None, flags: int = 0x0200, extra: str = "") -> bytes:
    """A .doc whose main text is ``text`` (``\\r`` ends a paragraph, ``\\x0c`` breaks a page, ``\\x07`` ends a
    cell), in two pieces: the first ``split`` characters 8-bit (Windows-1252), the rest UTF-16.  ``extra`` is a
    footnote story after the main text.  ``flags`` are the FIB's (0x0200: the table stream is 1Table)."""
    whole = text + extra + ("\r" if extra else "")
    split = len(whole) // 2 if split is None else split
    fib = bytearray(0x1000)
    struct.pack_into("<HHHHHH", fib, 0, 0xA5EC, 0x00C1, 0, 0x0409, 0, flags)
    struct.pack_into("<H", fib, 32, 14)
    struct.pack_into("<H", fib, 62, 22)
    struct.pack_into("<II", fib, 64 + 12, len(text), len(extra))  # ccpText, ccpFtn
    struct.pack_into("<H", fib, 152, 0x5D)
    eight, wide = 0x1000, 0x1000 + split
    word = bytes(fib) + whole[:split].encode("cp1252") + whole[split:].encode("utf-16-le")
    pieces = [(0, split, (eight * 2) | 0x40000000), (split, len(whole), wide)]
    plc = struct.pack(f"<{len(pieces) + 1}I", *[p[0] for p in pieces], pieces[-1][1])
    plc += b"".join(struct.pack("<HIH", 0, fc, 0) for _, _, fc in pieces)
    clx = b"\x01\x02\x00\x00\x00" + b"\x02" + struct.pack("<I", len(plc)) + plc  # a Prc, then the Pcdt
    table = bytes(16) + clx
    word = bytearray(word)
    struct.pack_into("<II", word, 154 + 33 * 8, 16, len(clx))  # fcClx, lcbClx
    return make_ole({"WordDocument": bytes(word), "1Table" if flags & 0x0200 else "0Table": table})


# --- PowerPoint 97 -------------------------------------------------------------------------------------------
def record(kind: int, body: bytes | list[bytes], instance: int = 0) -> bytes:
    container = isinstance(body, list)
    data = b"".join(body) if container else body
    return struct.pack("<HHI", (instance << 4) | (0xF if container else 0), kind, len(data)) + data


def chars(text: str) -> bytes:
    return record(0x0FA0, text.encode("utf-16-le"))


def make_ppt(slides: list[tuple[str, str, str, str]], *, broken: int = 0, streams: dict | None = None) -> bytes:
    """(title, body, other shape text, speaker notes) per slide: title and body in the slide list (UTF-16 and
    8-bit atoms), the other text in the slide record's drawing, the notes in a notes record (the slide names it by
    its notes id, the notes list maps that to a persist id, the persist directory to the record).  ``broken``: that
    slide's record holds a child that runs past its end."""
    listed = []
    for number, (title, body, _, _) in enumerate(slides, 1):
        listed += [record(0x03F3, struct.pack("<5I", 2 * number - 1, 0, 2, 255 + number, 0)),
                   record(0x0F9F, struct.pack("<I", 0)), chars(title),
                   record(0x0F9F, struct.pack("<I", 1)), record(0x0FA8, body.encode("latin-1"))]
    notes_listed = [record(0x03F3, struct.pack("<5I", 2 * number, 0, 0, 0x100 + number, 0))
                    for number, slide in enumerate(slides, 1) if slide[3]]  # persist id, notes id
    stream = bytearray(record(0x03E8, [record(0x03E9, bytes(40)), record(0x0FF0, listed, instance=0),
                                       record(0x0FF0, notes_listed, instance=2)]))
    offsets = []
    for number, (_, _, other, notes) in enumerate(slides, 1):
        atom = record(0x03EF, struct.pack("<I8sIIHH", 0, bytes(8), 0, 0x100 + number if notes else 0, 0, 0))
        drawing = record(0xF002, [record(0xF003, [record(0xF004, [record(0xF00D, [chars(other)])])])])
        if number == broken:
            drawing = struct.pack("<HHI", 0xF, 0xF002, 10_000) + drawing[8:]
        offsets.append(len(stream))
        stream += record(0x03EE, [atom, drawing])
        offsets.append(len(stream))
        stream += record(0x03F0, [record(0x03F1, bytes(8)), record(0xF002, [record(0xF00D, [chars(notes)])])]) \
            if notes else b""
    stream += record(0x1772, struct.pack(f"<{len(offsets) + 1}I", 1 | (len(offsets) << 20), *offsets))
    return make_ole({"PowerPoint Document": bytes(stream), "Current User": bytes(32), **(streams or {})})


# --- Outlook -------------------------------------------------------------------------------------------------
def _props(header: int, fixed: dict[int, tuple[int, bytes]]) -> bytes:
    return bytes(header) + b"".join(struct.pack("<II8s", (prop << 16) | kind, 6, value)
                                    for prop, (kind, value) in fixed.items())


def make_msg(subject: str, body: str, attachments: list[tuple[str, bytes, str]] = (), *,
             message_class: str = "IPM.Note", html: bytes | None = None) -> bytes:
    """An Outlook message from Ada Field to the team, sent 2026-03-03 10:00 UTC; (name, data, MIME type) per
    attachment."""
    sent = (1_772_532_000 + 11_644_473_600) * 10_000_000  # 2026-03-03 10:00:00 UTC as a FILETIME
    streams = {"__properties_version1.0": _props(32, {0x0039: (0x0040, struct.pack("<Q", sent))})}

    def text(prefix: str, prop: int, value: str) -> None:
        streams[f"{prefix}__substg1.0_{prop:04X}001F"] = value.encode("utf-16-le")

    for prop, value in ((0x001A, message_class), (0x0037, subject), (0x0C1A, "Ada Field"),
                        (0x0C1F, "ada@example.org"), (0x0E04, "Survey team"), (0x1000, body)):
        if value:
            text("", prop, value)
    if html is not None:
        streams["__substg1.0_10130102"] = html
    for number, (name, data, mime) in enumerate(attachments):
        prefix = f"__attach_version1.0_#{number:08X}/"
        streams[prefix + "__properties_version1.0"] = _props(8, {})
        text(prefix, 0x3707, name)
        text(prefix, 0x370E, mime)
        streams[prefix + "__substg1.0_37010102"] = data
    return make_ole(streams)


# --- Excel 97 ------------------------------------------------------------------------------------------------
def make_xls(sheets: dict[str, list[list]]) -> bytes:
    import xlwt

    book = xlwt.Workbook()
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for title, rows in sheets.items():
        sheet = book.add_sheet(title)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write(r, c, value, dates if hasattr(value, "year") else xlwt.Style.default_style)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xls_records(book: bytes) -> tuple[bytes, list[int]]:
    """The Workbook stream of an .xls and the offsets of its BOUNDSHEET records (one per sheet)."""
    import olefile

    with olefile.OleFileIO(io.BytesIO(book)) as ole:
        stream = ole.openstream("Workbook").read()
    at, sheets = 0, []
    while at + 4 <= len(stream):
        kind, length = struct.unpack_from("<HH", stream, at)
        if kind == 0x0085:
            sheets.append(at)
        if kind == 0x000A:  # the end of the workbook globals
            break
        at += 4 + length
    return stream, sheets


def with_filepass(book: bytes) -> bytes:
    """The .xls as saved with a password: a FILEPASS record (XOR obfuscation) right after the first BOF."""
    stream, _ = xls_records(book)
    (length,) = struct.unpack_from("<H", stream, 2)
    filepass = struct.pack("<HHHHH", 0x002F, 6, 0, 0x1234, 0x5678)
    return make_ole({"Workbook": stream[:4 + length] + filepass + stream[4 + length:]})


# --- OpenDocument --------------------------------------------------------------------------------------------
ODF_NAMESPACES = " ".join(f'xmlns:{p}="urn:oasis:names:tc:opendocument:xmlns:{n}:1.0"' for p, n in (
    ("office", "office"), ("text", "text"), ("table", "table"), ("draw", "drawing"),
    ("presentation", "presentation"), ("style", "style"), ("fo", "xsl-fo-compatible")))


def make_odf(kind: str, body: str, *, encrypted: bool = False, doctype: str = "", styles: str = "") -> bytes:
    """An ODF file (``kind``: text, spreadsheet or presentation) whose office body holds ``body`` (XML) and whose
    automatic styles are ``styles`` (XML)."""
    content = (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<office:document-content {ODF_NAMESPACES}>'
               f"<office:automatic-styles>{styles}</office:automatic-styles><office:body>"
               f"<office:{kind}>{body}</office:{kind}></office:body></office:document-content>")
    secret = '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"/>' if encrypted else ""
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{secret}'
                "</manifest:file-entry></manifest:manifest>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), f"application/vnd.oasis.opendocument.{kind}")
        z.writestr("content.xml", bytes(range(256)) * 4 if encrypted else content.encode())
        z.writestr("META-INF/manifest.xml", manifest)
    return out.getvalue()


def odf_paragraphs(*texts: str) -> str:
    return "".join(f"<text:p>{t}</text:p>" for t in texts)


def odf_row(*cells: str, repeat: int = 1) -> str:
    inner = "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" if c else "<table:table-cell/>"
                    for c in cells)
    return f'<table:table-row table:number-rows-repeated="{repeat}">{inner}</table:table-row>'


# --- password-protected OOXML --------------------------------------------------------------------------------
def encrypt_ooxml(data: bytes, password: str = "secret") -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def zip_encrypted(data: bytes) -> bytes:
    """A ZIP container with every entry flagged as encrypted (bit 0 of its local and central headers)."""
    out = bytearray(data)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        while at >= 0:
            out[at + flags_at] |= 0x01
            at = out.find(signature, at + 4)
    return bytes(out)
