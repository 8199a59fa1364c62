"""Checks a ZIP container (docx, pptx, xlsx, epub, odt/ods/odp) before a library unpacks it: entry count,
decompressed size, how much of that is markup a library parses into a tree (about 20x its size in RAM with
python-docx), and ZIP encryption (refused, with "encrypted" in the reason).

Python's ``zipfile`` never yields more bytes for an entry than the size its central directory declares (it stops
there and fails the CRC check), so the declared sizes bound what any library reading through ``zipfile`` can
inflate: summing them catches a zip bomb before a single byte is decompressed.
"""

from __future__ import annotations

import io
import struct
import zipfile

from .base import ExtractError, Limits

EOCD = b"PK\x05\x06"  # end of central directory record: entry count at offset 10
MEDIA = (".png", ".jpg", ".jpeg", ".jfif", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".emf", ".wmf", ".wdp", ".svgz",
         ".mp3", ".mp4", ".m4a", ".wav", ".avi", ".mov", ".ttf", ".otf", ".woff", ".woff2", ".odttf", ".fntdata",
         ".bin")
MEDIA_RATIO = 20  # media barely compresses: an entry that inflates more than this counts as markup whatever its name


def is_markup(info: zipfile.ZipInfo) -> bool:
    """Whether a library may parse this entry into a tree: anything but media (judged by name *and* by how much
    it inflates, since a container's content-type map can declare any entry name as XML)."""
    media = info.filename.lower().endswith(MEDIA) and info.file_size <= MEDIA_RATIO * max(1, info.compress_size)
    return not media


def declared_entries(data: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, read without parsing the directory (None when
    the record is missing or defers to ZIP64)."""
    at = data.rfind(EOCD, max(0, len(data) - 65557))
    if at < 0 or at + 22 > len(data):
        return None
    (entries,) = struct.unpack_from("<H", data, at + 10)
    return None if entries == 0xFFFF else entries


def open_zip(data: bytes, limits: Limits, what: str) -> zipfile.ZipFile:
    """The container, opened once its entry count and declared decompressed size are within the caps."""
    entries = declared_entries(data)
    if entries is not None and entries > limits.max_zip_entries:
        raise ExtractError(f"{what} has {entries} entries in its ZIP container (the cap is "
                           f"{limits.max_zip_entries}, MOESEARCH_MAX_ZIP_ENTRIES)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise ExtractError(f"corrupted {what}: not a readable ZIP container ({exc})") from None
    infos = zf.infolist()
    if any(info.flag_bits & 0x1 for info in infos):  # ZIP encryption (ODF encrypts inside, see loaders/odf.py)
        zf.close()
        raise ExtractError(f"encrypted {what}: entries of its ZIP container need a password; save an unprotected "
                           "copy and ingest that")
    if len(infos) > limits.max_zip_entries:
        raise ExtractError(f"{what} has {len(infos)} entries in its ZIP container (the cap is "
                           f"{limits.max_zip_entries}, MOESEARCH_MAX_ZIP_ENTRIES)")
    total = sum(info.file_size for info in infos)
    if total > limits.max_unzipped_bytes:
        raise ExtractError(f"{what} unpacks to {total / 2**20:.0f} MB, over the cap of {limits.max_unzipped_mb:g} "
                           "MB (MOESEARCH_MAX_UNZIPPED_MB); a zip bomb, or raise the cap")
    markup = sum(info.file_size for info in infos if is_markup(info))
    if markup > limits.max_xml_mb * 1024 * 1024:
        raise ExtractError(f"{what} holds {markup / 2**20:.0f} MB of XML/HTML once unpacked, over the cap of "
                           f"{limits.max_xml_mb:g} MB (MOESEARCH_MAX_XML_MB); parsing it would take about 20 "
                           "times that in memory")
    return zf


def check_zip(data: bytes, limits: Limits, what: str) -> None:
    """Refuse a container over the caps (see ``open_zip``) before handing its bytes to a library."""
    open_zip(data, limits, what).close()
