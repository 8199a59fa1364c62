"""The accepted file formats: one registry of the records the loader modules declare (``FORMAT = Format(...)``,
see ``indexer.loaders.record``).  Sniffing (``sniff.py``), extraction dispatch (``extract.py``), the MIME types
originals are served with, the accepted suffixes and the Ingest page's list all come from here.

A new format is one loader module that declares its record, plus its row in ``REGISTRY`` below.
"""

from __future__ import annotations

from pathlib import PurePath

from .loaders import delimited, doc, docx, eml, epub, html, image, msg, odf, pdf, ppt, pptx, rtf, text, xls, xlsx
from .loaders.record import TEXT, Format


def check_registry(*formats: Format) -> tuple[Format, ...]:
    """The records, refused when two claim the same type, suffix, signature or container marker."""
    for what, keys in (("doc_type", lambda f: [f.doc_type]), ("suffix", lambda f: f.suffixes),
                       ("signature", lambda f: [m.prefix for m in f.magic]),
                       ("ZIP entry", lambda f: [f.zip_entry] if f.zip_entry else []),
                       ("ZIP mimetype", lambda f: [f.zip_mimetype] if f.zip_mimetype else [])):
        seen: dict = {}
        for f in formats:
            for key in keys(f):
                if key in seen:
                    raise ValueError(f"{what} {key!r} is claimed by both {seen[key]} and {f.doc_type}")
                seen[key] = f.doc_type
    if not any(f.kind == TEXT for f in formats):
        raise ValueError("one format must read plain text (what no other format recognises)")
    return formats


# The order is the accepted-types list's; sniffing tries signatures, ZIP markers and detectors in this order too,
# and the first text format reads a text file whose suffix names no text format.
REGISTRY: tuple[Format, ...] = check_registry(
    pdf.FORMAT,
    text.TXT,
    text.MARKDOWN,
    html.FORMAT,
    docx.FORMAT,
    doc.FORMAT,
    odf.ODT,
    rtf.FORMAT,
    pptx.FORMAT,
    ppt.FORMAT,
    odf.ODP,
    xlsx.FORMAT,
    xls.FORMAT,
    odf.ODS,
    epub.FORMAT,
    delimited.FORMAT,
    eml.FORMAT,
    msg.FORMAT,
    image.FORMAT,
    text.JSON,
    text.XML,
    text.YAML,
    text.RST,
    text.ORG,
    text.CODE,
)
BY_DOC_TYPE = {f.doc_type: f for f in REGISTRY}
BY_SUFFIX = {suffix: f for f in REGISTRY for suffix in f.suffixes}
BY_KIND = {f.kind: f for f in reversed(REGISTRY)}  # a sniffed kind -> the (first) format that reads it
FORMATS = tuple((f.doc_type, f.label, f.suffixes) for f in REGISTRY)  # (doc_type, label, suffixes), for lists
SUPPORTED_SUFFIXES = {suffix: f.doc_type for suffix, f in BY_SUFFIX.items()}
DOC_TYPES = tuple(BY_DOC_TYPE)


def claimed(name: str) -> Format | None:
    """The format a file name's extension claims, or None for an unsupported / missing extension."""
    return BY_SUFFIX.get(PurePath(name).suffix.lower())


def accepted_types() -> str:
    """The accepted formats in words, e.g. for an upload form: "PDF (scanned pages by OCR) (.pdf), ..."."""
    return ", ".join(f"{f.label} ({' '.join(f.suffixes)})" for f in REGISTRY)


def mime_type(doc_type: str, name: str) -> str:
    """The MIME type a document's original is served with."""
    found = BY_DOC_TYPE.get(doc_type)
    return found.mime_for(name) if found else "application/octet-stream"
