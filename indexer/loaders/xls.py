"""XLS (Excel 97-2003 and 5/95 workbooks, BIFF in an OLE2 container) -> one page per worksheet with xlrd (BSD),
sheets loaded one at a time: as for XLSX, the first non-empty row names the columns and every later row becomes a
line ``Header: value; Header: value``.  A sheet xlrd cannot read is left out with a note; a workbook saved with a
password (a ``FILEPASS`` record) fails with "encrypted"."""

from __future__ import annotations

import io

from .base import Extracted, ExtractError, Limits, paged
from .ole import DESCRIPTIONS, detector, encrypted
from .record import Format, LoadInput
from .xlsx import row_lines


def _value(cell, datemode: int):
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (xlrd.xldate.XLDateError, ValueError, OverflowError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if cell.value else "FALSE"
    if cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_EMPTY):
        return None
    return cell.value


def load_xls(data: bytes, limits: Limits) -> Extracted:
    import xlrd

    log = io.StringIO()  # xlrd writes its warnings to a log file
    try:
        # ragged rows: a row is as long as its last cell (BIFF8 caps a sheet at 65,536 x 256 cells)
        book = xlrd.open_workbook(file_contents=data, on_demand=True, ragged_rows=True, logfile=log)
    except xlrd.XLRDError as exc:
        if "encrypted" in str(exc).lower():
            raise encrypted("Excel workbook (XLS)") from None
        raise ExtractError(f"corrupted XLS: {str(exc)[:160]}") from None
    except Exception as exc:  # xlrd raises struct, index and assertion errors for damaged records
        raise ExtractError(f"corrupted XLS: {type(exc).__name__}: {str(exc)[:160]}") from None
    try:
        names = book.sheet_names()
        limits.check_pages(len(names), "sheets")
        pages: list[tuple[int, str]] = []
        notes: list[str] = []
        seen = 0
        for number, title in enumerate(names, 1):
            try:
                sheet = book.sheet_by_index(number - 1)
                rows = ([_value(c, book.datemode) for c in sheet.row(r)] for r in range(sheet.nrows))
                lines, seen = row_lines(rows, limits, seen)
            except ExtractError:
                raise
            except Exception as exc:  # one damaged sheet: the others are still read
                notes.append(f"sheet {number} ({title!r}) left out: it cannot be read ({type(exc).__name__})")
                continue
            finally:
                book.unload_sheet(number - 1)
            if lines:
                pages.append((number, f"Sheet: {title}\n\n" + "\n".join(lines)))
        return paged("xls", pages, len(names), "sheets", notes)
    finally:
        book.release_resources()


def _load(got: LoadInput) -> Extracted:
    return load_xls(got.data, got.limits)


FORMAT = Format("xls", "Excel 97-2003", (".xls",), _load, page="sheet", mime="application/vnd.ms-excel",
                description=DESCRIPTIONS["xls"], detect=detector("xls"))
