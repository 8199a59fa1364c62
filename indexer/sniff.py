"""What a file really is, from its bytes (the extension is only a hint)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

SUPPORTED_SUFFIXES = {".pdf": "pdf", ".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md",
                      ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx"}
DOC_TYPES = ("pdf", "txt", "md", "html", "docx")

# Signatures of common binary formats, to say what a refused file is.
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"BM", "a BMP image"),
    (b"RIFF", "a RIFF file (WAV/AVI/WebP)"), (b"\x1f\x8b", "gzip-compressed data"), (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"), (b"MZ", "a Windows executable"), (b"\xd0\xcf\x11\xe0", "an old MS Office file "
    "(.doc/.xls/.ppt; save it as .docx or PDF)"), (b"SQLite format 3\x00", "an SQLite database"),
    (b"%!PS", "a PostScript file"), (b"ID3", "an MP3 file"), (b"OggS", "an Ogg media file"),
    (b"{\\rtf", "an RTF document (save it as .docx or PDF)"),
)
TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "pdf" | "docx" | "html" | "text" | "binary"
    description: str  # human words for messages: "a PNG image", "a PDF", ...


def _zip_kind(data: bytes) -> Sniffed:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return Sniffed("binary", "a damaged or truncated ZIP container (DOCX files are ZIP containers)")
    if "word/document.xml" in names:
        return Sniffed("docx", "a Word document (DOCX)")
    if any(n.startswith("xl/") for n in names):
        return Sniffed("binary", "an Excel workbook (xlsx)")
    if any(n.startswith("ppt/") for n in names):
        return Sniffed("binary", "a PowerPoint deck (pptx)")
    if "mimetype" in names:
        return Sniffed("binary", "an OpenDocument file (save it as .docx or PDF)")
    return Sniffed("binary", "a ZIP archive")


def _looks_html(data: bytes) -> bool:
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and any(
        tag in head for tag in (b"<html", b"<head>", b"<body")))


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
    return Sniffed("text", "text")


def suffix_type(name: str) -> str | None:
    """The document type an extension claims, or None for an unsupported / missing extension."""
    return SUPPORTED_SUFFIXES.get(PurePath(name).suffix.lower())
