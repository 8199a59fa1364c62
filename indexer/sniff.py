"""What a file really is, from its bytes (the extension is only a hint), and the formats the indexer accepts."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

from .loaders.zipsafe import declared_entries

# The accepted formats, once: (doc_type, what people call it, extensions).  The Ingest page lists these.
FORMATS = (
    ("pdf", "PDF (scanned pages by OCR)", (".pdf",)),
    ("txt", "plain text (any encoding)", (".txt", ".text")),
    ("md", "Markdown", (".md", ".markdown")),
    ("html", "HTML", (".html", ".htm", ".xhtml")),
    ("docx", "Word", (".docx",)),
    ("pptx", "PowerPoint", (".pptx",)),
    ("xlsx", "Excel", (".xlsx", ".xlsm")),
    ("epub", "EPUB", (".epub",)),
    ("csv", "CSV / TSV", (".csv", ".tsv")),
    ("eml", "e-mail", (".eml",)),
    ("image", "images by OCR", (".png", ".jpg", ".jpeg", ".tif", ".tiff")),
)
SUPPORTED_SUFFIXES = {suffix: doc_type for doc_type, _, suffixes in FORMATS for suffix in suffixes}
DOC_TYPES = tuple(doc_type for doc_type, _, _ in FORMATS)
MAX_SNIFF_ENTRIES = 100_000  # a ZIP with more entries is not opened to look inside

IMAGES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"II*\x00", "a TIFF image"),
          (b"MM\x00*", "a TIFF image"))
# Signatures of common binary formats, to say what a refused file is.
MAGIC = (
    (b"GIF87a", "a GIF image (convert it to PNG)"), (b"GIF89a", "a GIF image (convert it to PNG)"),
    (b"BM", "a BMP image (convert it to PNG)"),
    (b"RIFF", "a RIFF file (WAV/AVI/WebP)"), (b"\x1f\x8b", "gzip-compressed data"), (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"), (b"MZ", "a Windows executable"), (b"\xd0\xcf\x11\xe0", "an old MS Office file "
    "(.doc/.xls/.ppt; save it as .docx/.xlsx/.pptx or PDF)"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"%!PS", "a PostScript file"), (b"ID3", "an MP3 file"), (b"OggS", "an Ogg media file"),
    (b"{\\rtf", "an RTF document (save it as .docx or PDF)"),
)
TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
HEADER = re.compile(rb"([A-Za-z][A-Za-z0-9-]*):")
MAIL_HEADERS = {b"to", b"subject", b"date", b"message-id", b"mime-version", b"received", b"return-path"}


@dataclass(frozen=True)
class Sniffed:
    kind: str  # pdf | docx | pptx | xlsx | epub | image | eml | html | text | binary
    description: str  # human words for messages: "a PNG image", "a PDF", ...


def _zip_kind(data: bytes) -> Sniffed:
    entries = declared_entries(data)
    if entries is not None and entries > MAX_SNIFF_ENTRIES:
        return Sniffed("binary", f"a ZIP archive of {entries} entries")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = set(zf.namelist())
        mimetype = zf.open("mimetype").read(64).strip() if "mimetype" in names else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return Sniffed("binary", "a damaged or truncated ZIP container (DOCX/PPTX/XLSX/EPUB files are ZIP "
                                 "containers)")
    if "word/document.xml" in names:
        return Sniffed("docx", "a Word document (DOCX)")
    if "xl/workbook.xml" in names:
        return Sniffed("xlsx", "an Excel workbook (XLSX)")
    if "ppt/presentation.xml" in names:
        return Sniffed("pptx", "a PowerPoint deck (PPTX)")
    if mimetype == b"application/epub+zip":
        return Sniffed("epub", "an EPUB book")
    if mimetype.startswith(b"application/vnd.oasis.opendocument"):
        return Sniffed("binary", "an OpenDocument file (save it as .docx/.xlsx/.pptx or PDF)")
    return Sniffed("binary", "a ZIP archive")


def _looks_html(data: bytes) -> bool:
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and any(
        tag in head for tag in (b"<html", b"<head>", b"<body")))


def _looks_email(data: bytes) -> bool:
    """RFC 5322 headers up to the first blank line, among them From and one more that mail always has."""
    names: set[bytes] = set()
    for line in data[:16384].split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            return b"from" in names and bool(names & MAIL_HEADERS)
        if line[:1] in (b" ", b"\t") and names:  # a folded header continues
            continue
        found = HEADER.match(line)
        if not found:
            return False
        names.add(found.group(1).lower())
    return False


def _junk(prefix: bytes) -> bool:
    """Bytes that are not text (so a later "%PDF-" is a header, not words in a text file)."""
    if not prefix.strip() or b"\x00" in prefix:
        return True
    try:
        text = prefix.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(not c.isprintable() and not c.isspace() for c in text)


def sniff(data: bytes) -> Sniffed:
    at = data[:1024].find(b"%PDF-")
    if at == 0 or at > 0 and _junk(data[:at]):  # readers accept a header after some leading junk bytes
        return Sniffed("pdf", "a PDF")
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    for magic, description in IMAGES:
        if data.startswith(magic):
            return Sniffed("image", description)
    sample = data[:8192]
    binary = not sample.startswith(TEXT_BOMS[1:]) and b"\x00" in sample
    for magic, description in MAGIC:
        # a signature of printable ASCII ("BM", "MZ", "ID3", ...) may just be how a text starts
        if data.startswith(magic) and (binary or not magic.isascii() or not magic.decode().isprintable()):
            return Sniffed("binary", description)
    if binary:
        return Sniffed("binary", "binary data")
    if _looks_html(data):
        return Sniffed("html", "an HTML page")
    if _looks_email(data):
        return Sniffed("eml", "an e-mail message")
    return Sniffed("text", "text")


def suffix_type(name: str) -> str | None:
    """The document type an extension claims, or None for an unsupported / missing extension."""
    return SUPPORTED_SUFFIXES.get(PurePath(name).suffix.lower())


def accepted_types() -> str:
    """The accepted formats in words, e.g. for an upload form: "PDF (scanned pages by OCR) (.pdf), ..."."""
    return ", ".join(f"{label} ({' '.join(suffixes)})" for _, label, suffixes in FORMATS)
