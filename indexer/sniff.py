"""What a file really is, from its bytes (the extension is only a hint): the formats' own signatures, ZIP markers
and detectors (``indexer.formats``; an OLE2 container goes to the detectors at once, they tell .doc/.xls/.ppt/.msg
apart by its streams), and the signatures of common formats that are refused, to say what they are.  A
password-protected OOXML file (an OLE2 container of encrypted streams) is sniffed as ``ENCRYPTED``."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from .formats import BY_KIND, REGISTRY
from .loaders import ole
from .loaders.record import TEXT, Magic
from .loaders.zipsafe import declared_entries

MAX_SNIFF_ENTRIES = 100_000  # a ZIP with more entries is not opened to look inside
ENCRYPTED = "encrypted"  # the sniffed kind of a password-protected file no format reads (an encrypted OOXML file)

# Signatures of common binary formats that are not accepted, to say what a refused file is.
MAGIC = (
    (b"GIF87a", "a GIF image (convert it to PNG)"), (b"GIF89a", "a GIF image (convert it to PNG)"),
    (b"BM", "a BMP image (convert it to PNG)"),
    (b"RIFF", "a RIFF file (WAV/AVI/WebP)"), (b"\x1f\x8b", "gzip-compressed data"), (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"), (b"MZ", "a Windows executable"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"%!PS", "a PostScript file"), (b"ID3", "an MP3 file"), (b"OggS", "an Ogg media file"),
)
TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # a format's doc_type (indexer.formats), "text" (no format recognises it), "binary" (refused) or
    # ENCRYPTED (refused: it needs a password)
    description: str  # human words for messages: "a PNG image", "a PDF", ...


def _zip_kind(data: bytes) -> Sniffed:
    entries = declared_entries(data)
    if entries is not None and entries > MAX_SNIFF_ENTRIES:
        return Sniffed("binary", f"a ZIP archive of {entries} entries")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = set(zf.namelist())
        readable = "mimetype" in names and not zf.getinfo("mimetype").flag_bits & 0x1  # not ZIP-encrypted
        mimetype = zf.open("mimetype").read(64).strip() if readable else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return Sniffed("binary", "a damaged or truncated ZIP container (DOCX/PPTX/XLSX/EPUB/ODF files are ZIP "
                                 "containers)")
    for f in REGISTRY:
        if (f.zip_entry and f.zip_entry in names) or (f.zip_mimetype and mimetype == f.zip_mimetype.encode()):
            return Sniffed(f.kind, f.description)
    if any(info.flag_bits & 0x1 for info in zf.infolist()):
        return Sniffed("binary", "an encrypted (password-protected) ZIP archive")
    if mimetype.startswith(b"application/vnd.oasis.opendocument"):
        return Sniffed("binary", "an OpenDocument file (save it as .docx/.xlsx/.pptx or PDF)")
    return Sniffed("binary", "a ZIP archive")


def _ole_kind(data: bytes) -> Sniffed:
    """An OLE2 compound file: what the formats' detectors say it is (a .doc, .xls, .ppt, .msg), else what it holds."""
    for f in REGISTRY:
        if f.detect is not None and f.detect(data):
            return Sniffed(f.kind, f.description)
    kind = ole.container_kind(data)
    return Sniffed(ENCRYPTED if kind == ole.ENCRYPTED_OOXML else "binary", ole.describe(data))


def _junk(prefix: bytes) -> bool:
    """Bytes that are not text (so a later "%PDF-" is a header, not words in a text file)."""
    if not prefix.strip() or b"\x00" in prefix:
        return True
    try:
        text = prefix.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(not c.isprintable() and not c.isspace() for c in text)


def _has(magic: Magic, data: bytes) -> bool:
    if data.startswith(magic.prefix):
        return True
    at = data[:magic.after_junk].find(magic.prefix)  # readers accept a header after some leading junk bytes
    return at > 0 and _junk(data[:at])


def sniff(data: bytes) -> Sniffed:
    for f in REGISTRY:
        for magic in f.magic:
            if _has(magic, data):
                return Sniffed(f.kind, magic.description)
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if data.startswith(ole.SIGNATURE):
        return _ole_kind(data)
    sample = data[:8192]
    binary = not sample.startswith(TEXT_BOMS[1:]) and b"\x00" in sample
    for magic, description in MAGIC:
        # a signature of printable ASCII ("BM", "MZ", "ID3", ...) may just be how a text starts
        if data.startswith(magic) and (binary or not magic.isascii() or not magic.decode().isprintable()):
            return Sniffed("binary", description)
    if binary:
        return Sniffed("binary", "binary data")
    for f in REGISTRY:
        if f.detect is not None and f.detect(data):
            return Sniffed(f.kind, f.description)
    return Sniffed(TEXT, BY_KIND[TEXT].description)
