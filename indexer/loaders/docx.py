"""DOCX -> text with python-docx: paragraphs, then table rows as ``a | b | c``; the container is checked first."""

from __future__ import annotations

import io
import zipfile

from .base import Extracted, ExtractError, Limits, single_page
from .record import Format, LoadInput
from .zipsafe import check_zip


def load_docx(data: bytes, limits: Limits) -> Extracted:
    import docx

    check_zip(data, limits, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractError(f"corrupted DOCX: {exc}") from None
    except Exception as exc:  # lxml errors for damaged XML parts
        raise ExtractError(f"corrupted DOCX: {type(exc).__name__}: {exc}") from None
    blocks = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return single_page("docx", "\n\n".join(b for b in blocks if b.strip()))


def _load(got: LoadInput) -> Extracted:
    return load_docx(got.data, got.limits)


FORMAT = Format("docx", "Word", (".docx",), _load, page="file",
                mime="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                description="a Word document (DOCX)", zip_entry="word/document.xml")
