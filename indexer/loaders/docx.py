"""DOCX -> text with python-docx: paragraphs, then table rows as ``a | b | c``; the container is checked first.

Rows are read cell element by cell element (``w:tc``), not through python-docx's grid (``row.cells``), which fails
on a table whose merged cells do not line up with the row above ("no `tc` element at grid_offset=1"): a
horizontally merged cell is one cell, a vertically merged one is read where it starts.  A table that cannot be read
all the same is left out with a note."""

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
    notes: list[str] = []
    for number, table in enumerate(document.tables, 1):
        try:
            blocks += _rows(table)
        except Exception as exc:  # one odd table: the rest of the document is still read
            notes.append(f"table {number} left out: it cannot be read ({type(exc).__name__}: {str(exc)[:80]})")
    return single_page("docx", "\n\n".join(b for b in blocks if b.strip()), notes)


def _rows(table) -> list[str]:
    """``a | b | c`` per row, from the row's own cells (a vertically merged cell's continuations are empty)."""
    from docx.table import _Cell

    return [" | ".join(_Cell(tc, table).text.strip() for tc in tr.tc_lst if tc.vMerge != "continue")
            for tr in table._tbl.tr_lst]


def _load(got: LoadInput) -> Extracted:
    return load_docx(got.data, got.limits)


FORMAT = Format("docx", "Word", (".docx",), _load, page="file",
                mime="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                description="a Word document (DOCX)", zip_entry="word/document.xml")
