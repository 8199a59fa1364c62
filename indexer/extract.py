"""Bytes -> pages of text, by sniffed type, through the loader of its format (``indexer.formats``: PDF with OCR
for image pages, plain text in any encoding, Markdown, HTML, DOCX/DOC/ODT, RTF, PPTX/PPT/ODP, XLSX/XLS/ODS, EPUB,
CSV/TSV, e-mail (.eml/.msg), PNG/JPEG/TIFF images by OCR, and text formats such as JSON, XML, YAML or source
code).  The content decides the format; the file name's extension only picks among the
formats that read that content (a text file named .md is Markdown, one named .html an HTML fragment).

Every refusal is an ``ExtractError`` whose message says what is wrong with the file and, where there is
one, what to do about it (a cap names its setting).  Nothing here touches the store.
"""

from __future__ import annotations

from pathlib import PurePath

from .formats import BY_KIND, claimed
from .loaders.base import Extracted, ExtractError, Limits, OcrProgress, check_readable, garbage_ratio, normalize
from .loaders.record import TEXT, LoadInput
from .sniff import ENCRYPTED, sniff

__all__ = ["Extracted", "ExtractError", "Limits", "extract", "garbage_ratio", "normalize"]


def default_limits() -> Limits:
    from .settings import IndexerSettings

    return Limits.from_settings(IndexerSettings.from_env())


def extract(data: bytes, name: str, limits: Limits | None = None, progress: OcrProgress | None = None) -> Extracted:
    """Pages of text from a file's bytes; ``name`` (its file name) is only a hint for the type.  ``limits``
    default to the environment's settings; ``progress(done, total)`` is called after each page read by OCR."""
    if not data:
        raise ExtractError("empty file (0 bytes)")
    limits = limits or default_limits()
    found = sniff(data)
    named = claimed(name)
    suffix = PurePath(name).suffix.lower() or "(no extension)"
    notes: list[str] = []
    if found.kind == ENCRYPTED:
        raise ExtractError(f"encrypted: the file is {found.description}; it needs a password to open, save an "
                           "unprotected copy and ingest that")
    if found.kind == "binary":
        if named is not None:
            raise ExtractError(f"named {suffix} but the content is {found.description}, not a "
                               f"{named.doc_type.upper()} file")
        raise ExtractError(f"unsupported file type: {found.description}")
    fmt = named if named is not None and named.reads(found.kind) else BY_KIND[found.kind]
    renamed = ""
    if named is not None and fmt is not named:
        renamed = f"named {suffix} but the content is {found.description}"
        notes.append(f"{renamed}; indexed as such")
    elif named is None and (PurePath(name).suffix or fmt.kind != TEXT):  # README, Makefile: text, no note
        notes.append(f"unsupported extension {suffix}; the content is {found.description}, indexed as such")
    try:
        try:
            got = fmt.load(LoadInput(data, name, found.description, limits, progress))
        except ImportError as exc:  # an install without the `app` extra
            raise ExtractError(f"reading {found.description} needs the Python package {exc.name!r}, which is not "
                               "installed: pip install 'moesearch[app]'") from None
    except ExtractError as exc:
        if renamed:
            raise ExtractError(f"{renamed}; {exc}") from None
        raise
    check_readable("\n".join(t for _, t in got.pages), fmt.text_name)
    return Extracted(got.doc_type, got.pages, got.page_count, tuple(notes) + got.notes, got.ocr_pages)
