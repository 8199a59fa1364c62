"""Bytes -> pages of text, by sniffed type, through one loader per format (``indexer.loaders``): PDF (text layer,
OCR for image pages), plain text in any encoding, Markdown, HTML, DOCX, PPTX (a page per slide), XLSX (a page per
sheet), EPUB (a page per chapter), CSV/TSV, e-mail (a page for the message, one per text attachment) and
PNG/JPEG/TIFF images (OCR).

Every refusal is an ``ExtractError`` whose message says what is wrong with the file and, where there is
one, what to do about it (a cap names its setting).  Nothing here touches the store.
"""

from __future__ import annotations

from pathlib import PurePath

from .loaders.base import (
    Extracted,
    ExtractError,
    Limits,
    OcrProgress,
    check_readable,
    garbage_ratio,
    normalize,
    single_page,
)
from .loaders.delimited import load_delimited
from .loaders.docx import load_docx
from .loaders.eml import load_eml
from .loaders.epub import load_epub
from .loaders.html import read_html
from .loaders.image import load_image
from .loaders.pdf import load_pdf
from .loaders.pptx import load_pptx
from .loaders.text import decode_text
from .loaders.xlsx import load_xlsx
from .sniff import sniff, suffix_type

__all__ = ["Extracted", "ExtractError", "Limits", "extract", "garbage_ratio", "normalize"]
# the sniffed kind each claimed type must have (a text file may claim any text format)
EXPECTED = {"pdf": "pdf", "docx": "docx", "pptx": "pptx", "xlsx": "xlsx", "epub": "epub", "html": "html",
            "txt": "text", "md": "text", "csv": "text", "eml": "eml", "image": "image"}


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
    claimed = suffix_type(name)
    suffix = PurePath(name).suffix.lower() or "(no extension)"
    notes: list[str] = []
    if found.kind == "binary":
        if claimed:
            raise ExtractError(f"named {suffix} but the content is {found.description}, not a {claimed.upper()} file")
        raise ExtractError(f"unsupported file type: {found.description}")
    kind = found.kind
    if kind == "text" and claimed in ("html", "csv"):  # an HTML fragment, or delimited text
        kind = claimed
    renamed = ""
    if claimed and EXPECTED[claimed] != found.kind and not (found.kind == "text" and claimed == "html"):
        renamed = f"named {suffix} but the content is {found.description}"
        notes.append(f"{renamed}; indexed as such")
    elif claimed is None:
        notes.append(f"unsupported extension {suffix}; the content is {found.description}, indexed as such")
    try:
        try:
            got = _load(kind, data, claimed, suffix, found.description, limits, progress)
        except ImportError as exc:  # an install without the `app` extra
            raise ExtractError(f"reading {found.description} needs the Python package {exc.name!r}, which is not "
                               "installed: pip install 'moesearch[app]'") from None
    except ExtractError as exc:
        if renamed:
            raise ExtractError(f"{renamed}; {exc}") from None
        raise
    what = {"pdf": "the PDF's text layer", "image": "the OCR text"}.get(got.doc_type, "the text")
    check_readable("\n".join(t for _, t in got.pages), what)
    return Extracted(got.doc_type, got.pages, got.page_count, tuple(notes) + got.notes, got.ocr_pages)


def _load(kind: str, data: bytes, claimed: str | None, suffix: str, description: str, limits: Limits,
          progress: OcrProgress | None) -> Extracted:
    if kind == "pdf":
        return load_pdf(data, limits, progress)
    if kind == "image":
        return load_image(data, limits, description, progress)
    if kind == "docx":
        return load_docx(data, limits)
    if kind == "pptx":
        return load_pptx(data, limits)
    if kind == "xlsx":
        return load_xlsx(data, limits)
    if kind == "epub":
        return load_epub(data, limits)
    if kind == "eml":
        return load_eml(data, limits)
    if kind == "csv":
        return load_delimited(data, limits, tab=suffix == ".tsv")
    if kind == "html":
        text, notes = read_html(data)
        return single_page("html", text, notes)
    text, notes = decode_text(data)
    return single_page("md" if claimed == "md" else "txt", text, notes)
