"""CSV / TSV -> text (standard ``csv``): rows as ``Header: value; ...`` lines under the header row, as for a
spreadsheet sheet.  The delimiter is the extension's (comma / tab) when the header line has it, else what
``csv.Sniffer`` finds."""

from __future__ import annotations

import csv
import io

from .base import Extracted, ExtractError, Limits, single_page
from .record import Format, LoadInput
from .text import decode_text
from .xlsx import row_lines


def load_delimited(data: bytes, limits: Limits, tab: bool) -> Extracted:
    text, notes = decode_text(data)
    delimiter = "\t" if tab else ","
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    if delimiter not in first:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
            notes.append(f"the columns are separated by {delimiter!r}")
        except csv.Error:
            pass
    try:
        lines, _ = row_lines(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), limits)
    except csv.Error as exc:
        raise ExtractError(f"malformed CSV: {exc}") from None
    return single_page("csv", "\n".join(lines), notes)


def _load(got: LoadInput) -> Extracted:
    return load_delimited(got.data, got.limits, tab=got.suffix == ".tsv")


FORMAT = Format("csv", "CSV / TSV", (".csv", ".tsv"), _load, page="file", mime="text/csv",
                mime_by_suffix=((".tsv", "text/tab-separated-values"),))
