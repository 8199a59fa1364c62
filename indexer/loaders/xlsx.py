"""XLSX -> one page per worksheet (openpyxl, read-only streaming, cached values): the first non-empty row names
the columns, every later row becomes a line ``Header: value; Header: value``.  A sheet that cannot be read is left
out with a note."""

from __future__ import annotations

import io
from datetime import date, datetime, time

from .base import Extracted, ExtractError, Limits, paged
from .record import Format, LoadInput
from .zipsafe import check_zip

EXCEL_ROWS = 1_048_576  # rows in a sheet (Excel's limit); a CSV may not have more either


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


def row_lines(rows, limits: Limits, seen: int = 0) -> tuple[list[str], int]:
    """Lines for an iterable of rows (tuples of cell values): the header row, then ``name: value`` per cell
    (cells without a header are named by column number); ``seen`` counts non-empty rows already read from this
    file.  Empty rows do not count (openpyxl yields one for every row number skipped), up to Excel's last row."""
    header: list[str] | None = None
    lines: list[str] = []
    for scanned, row in enumerate(rows, 1):
        if scanned > EXCEL_ROWS:
            raise ExtractError(f"rows numbered past {EXCEL_ROWS}, the most a sheet can have: a damaged file")
        cells = [cell_text(v) for v in row]
        if not any(cells):
            continue
        seen += 1
        limits.check_rows(seen)
        if header is None:
            header = cells
            lines.append(" | ".join(c for c in cells if c))
            continue
        parts = [f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {c}"
                 for i, c in enumerate(cells) if c]
        lines.append("; ".join(parts))
    return lines, seen


def load_xlsx(data: bytes, limits: Limits) -> Extracted:
    from openpyxl import load_workbook

    check_zip(data, limits, "XLSX")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for damaged parts
        raise ExtractError(f"corrupted XLSX: {type(exc).__name__}: {str(exc)[:160]}") from None
    try:
        sheets = book.worksheets
        limits.check_pages(len(sheets), "sheets")
        pages: list[tuple[int, str]] = []
        notes: list[str] = []
        seen = 0
        for number, sheet in enumerate(sheets, 1):
            if not hasattr(sheet, "iter_rows"):  # a chart sheet
                continue
            try:
                sheet.reset_dimensions()  # read every row, not just those inside the dimension the file claims
                lines, seen = row_lines(sheet.iter_rows(values_only=True), limits, seen)
            except ExtractError:
                raise
            except Exception as exc:  # one broken sheet: the others are still read
                notes.append(f"sheet {number} ({sheet.title!r}) left out: it cannot be read ({type(exc).__name__})")
                continue
            if lines:
                pages.append((number, f"Sheet: {sheet.title}\n\n" + "\n".join(lines)))
        return paged("xlsx", pages, len(sheets), "sheets", notes)
    finally:
        book.close()


def _load(got: LoadInput) -> Extracted:
    return load_xlsx(got.data, got.limits)


FORMAT = Format("xlsx", "Excel", (".xlsx", ".xlsm"), _load, page="sheet",
                mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                description="an Excel workbook (XLSX)", zip_entry="xl/workbook.xml")
