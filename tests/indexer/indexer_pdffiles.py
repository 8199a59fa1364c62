"""PDFs written byte by byte, for the PDF text tests and ``bench/pdf_text.py``: text placed the way LaTeX/Sphinx
manuals place it (each word its own string in a ``TJ`` array, the gaps made by positioning, not by space
characters, in a font whose declared space is wide), which pypdf reads as words run together and PDFium does not;
ligature glyphs (fi, fl, ffi), words hyphenated at line ends, running headers and footers, two columns."""

from __future__ import annotations

import io

LIGATURES = {"\ufb01": b"\x01", "\ufb02": b"\x02", "\ufb03": b"\x03"}  # the font's /Differences codes
FONT_SIZE = 11
GLYPH = 500  # every glyph's declared width (thousandths of the font size) ...
SPACE = 1000  # ... but the space's: pypdf takes a TJ gap for a space only when it is over half of this
GAP = 330  # the word gap in a TJ array, as Sphinx's LaTeX writes it (thousandths, pushed right)
LEADING = 14
PAGE_W, PAGE_H = 612, 792


def _string(word: str) -> bytes:
    out = bytearray()
    for ch in word:
        if ch in LIGATURES:
            out += LIGATURES[ch]
        elif ch in "()\\":
            out += b"\\" + ch.encode()
        else:
            out += ch.encode("latin-1")
    return b"(" + bytes(out) + b")"


def _show(text: str, kerned: bool) -> bytes:
    """One line's text-showing operator: words as strings of a TJ array with positioning gaps (``kerned``), or one
    string with space characters."""
    if not kerned:
        return _string(text) + b" Tj"
    return b"[" + b"".join(_string(w) + b" -%d " % GAP for w in text.split()) + b"] TJ"


def pdf(pages: list[list[tuple[float, float, str]]], kerned: bool = True) -> bytes:
    """A PDF of ``pages``, each a list of ``(x, y, line)`` (points from the bottom left), drawn in that order."""
    widths = b" ".join(b"%d" % (SPACE if code == 32 else GLYPH) for code in range(1, 256))
    objects: list[bytes] = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /FirstChar 1 /LastChar 255 "
                            b"/Widths [" + widths + b"] /Encoding << /Type /Encoding /BaseEncoding /WinAnsiEncoding "
                            b"/Differences [1 /fi /fl /ffi] >> >>"]
    pages_id = 1 + 2 * len(pages) + 1
    kids = []
    for lines in pages:
        ops = b"\n".join(b"BT /F1 %d Tf 1 0 0 1 %.2f %.2f Tm " % (FONT_SIZE, x, y) + _show(text, kerned) + b" ET"
                         for x, y, text in lines)
        objects.append(b"<< /Length %d >>\nstream\n" % len(ops) + ops + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 1 0 R >> "
                       b">> /Contents %d 0 R >>" % (pages_id, PAGE_W, PAGE_H, len(objects)))
        kids.append(len(objects))
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)))
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(objects),
                                                                                   xref))
    return out.getvalue()


def column(lines: list[str], x: float = 72, top: float = 700) -> list[tuple[float, float, str]]:
    return [(x, top - i * LEADING, line) for i, line in enumerate(lines)]


def book(pages: list[list[str]], header: str = "", footer: str = "Page {n}", kerned: bool = True) -> bytes:
    """Pages of lines under a running header and over a footer (``{n}``: the page number); empty strings for none."""
    out = []
    for n, lines in enumerate(pages, 1):
        placed = column(lines)
        if header:
            placed.insert(0, (72, 750, header.format(n=n)))
        if footer:
            placed.append((300, 40, footer.format(n=n)))
        out.append(placed)
    return pdf(out, kerned)


def two_columns(left: list[str], right: list[str], kerned: bool = True) -> bytes:
    """One page: the left column drawn first, then the right one, their lines side by side."""
    return pdf([column(left, 72) + column(right, 330)], kerned)


def wrap(text: str, width: int = 70) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
