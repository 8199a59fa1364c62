"""RTF -> text with striprtf (pure Python, BSD-3-Clause): one page, or a page per explicit page break (``\\page``).

Before striprtf sees the file, one linear pass of ours (``prepare``) checks its structure and rewrites it so that
striprtf's own regular expressions stay linear: on a crafted 3 KB font table striprtf alone runs for minutes
(``\\f(\\d+).*?\\fcharset(\\d+).*?([^;]+);`` backtracks without end when no ``;`` follows), and its hyperlink
pattern is cubic on a long line of ``{\\field{\\*\\fldinst{`` groups.  The pass

- refuses a file whose groups are not closed (cut short) and drops ``\\binN`` binary data (never text);
- starts a new line before every ``{`` and every ``\\fN`` (raw line breaks are not text in RTF, and neither
  pattern can then span the lines that made it slow), writes the escaped ``\\\\ \\{ \\}`` as Unicode escapes (so
  every brace striprtf counts is a real group) and ends the font table with a ``;``;
- drops the hex contents of destinations striprtf ignores anyway (pictures, embedded objects, theme data), so a
  picture-heavy file is not read character by character in Python;
- replaces ``\\page`` by a marker character that striprtf passes through, to split the pages on.
"""

from __future__ import annotations

import re

from .base import Extracted, ExtractError, Limits, paged, single_page
from .record import Format, LoadInput, Magic

PAGE = "\ufdd0"  # a noncharacter marks a page break in striprtf's output (the file's own are replaced)
REPLACEMENT = 0xFFFD
SKIPPED = (b"pict", b"objdata", b"themedata", b"datastore", b"colorschememapping", b"fontemb", b"fontfile")
SCAN = re.compile(rb"\\(bin|page|fonttbl|f|u|" + b"|".join(SKIPPED) + rb")(?![a-zA-Z])(-?\d{1,10})? ?"
                  rb"|\\([\\{}])|([{}])")
CODEPAGE = re.compile(rb"\\ansicpg(\d{1,5})")


def _unicode(code: int) -> bytes:
    """A character as a self-contained group striprtf reads whatever the ``\\uc`` in force."""
    return b"\n{\\uc1\\u%d?}" % code


def _bad_unicode(arg: bytes | None) -> bool:
    if arg is None:
        return False
    code = int(arg) + (65536 if arg.startswith(b"-") else 0)
    return not 0 <= code <= 0x10FFFF or code == ord(PAGE)


def prepare(data: bytes) -> bytes:
    """The file rewritten for striprtf (see the module's docstring); ExtractError for a truncated file."""
    out = bytearray()
    stack: list[bool] = []  # an entry per open group: whether it is the font table
    skip = 0  # while > 0: the depth of the skipped destination whose close ends the skipping
    last = pos = 0
    while (found := SCAN.search(data, pos)) is not None:
        if not skip:
            out += data[last:found.start()]
        last = pos = found.end()
        word, arg, escaped, brace = found.groups()
        if brace == b"{":
            stack.append(False)
            if not skip:
                out += b"\n{"
        elif brace == b"}":
            font = stack.pop() if stack else False
            if skip and len(stack) < skip:
                skip = 0
            if not skip:
                out += b";}" if font else b"}"
            if not stack:  # the document's group is closed: what follows is not part of it
                return bytes(out)
        elif word == b"bin":
            if arg is not None and not arg.startswith(b"-"):
                last = pos = found.end() + int(arg)
                if pos > len(data):
                    raise ExtractError(f"truncated RTF: its binary data (\\bin{int(arg)}) runs past the end of the "
                                       "file")
            elif not skip:
                out += found.group()
        elif skip:
            continue
        elif escaped:
            out += _unicode(ord(escaped))
        elif word == b"page":
            out += _unicode(ord(PAGE))
        elif word == b"f":
            out += b"\n" + found.group()
        elif word == b"u" and _bad_unicode(arg):
            out += b"\\u%d" % REPLACEMENT + (b" " if found.group().endswith(b" ") else b"")
        else:
            if word == b"fonttbl" and stack:
                stack[-1] = True
            elif word in SKIPPED:
                skip = len(stack)
            out += found.group()
    raise ExtractError(f"truncated RTF: {len(stack)} group(s) still open at the end of the file (it was cut short, "
                       "or a closing brace is missing)")


def _decode(data: bytes) -> str:
    """RTF is 7-bit text; raw 8-bit bytes are taken as UTF-8 when they are, else in the declared code page."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = CODEPAGE.search(data[:4096])
    try:
        return data.decode(f"cp{int(declared.group(1))}" if declared else "cp1252", errors="replace")
    except LookupError:
        return data.decode("cp1252", errors="replace")


def load_rtf(data: bytes, limits: Limits) -> Extracted:
    from striprtf import striprtf

    if not data.startswith(b"{\\rtf"):
        raise ExtractError("not an RTF document: it does not start with {\\rtf")
    prepared = _decode(prepare(data)).replace(PAGE, chr(REPLACEMENT))
    try:
        text = striprtf.rtf_to_text(prepared, errors="replace")
    except MemoryError:
        raise
    except LookupError as exc:  # a font's \fcharset names a code page Python has no codec for
        raise ExtractError(f"RTF in a character set that cannot be decoded here ({exc})") from None
    except Exception as exc:  # striprtf has no error type of its own: a malformed control word fails somewhere
        raise ExtractError(f"malformed RTF: {type(exc).__name__}: {str(exc)[:160]}") from None
    # non-BMP characters come as UTF-16 surrogate pairs (\u-10179?\u-8704?): join them, replace lone halves
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    parts = text.split(PAGE)
    limits.check_pages(len(parts))
    if len(parts) == 1:
        return single_page("rtf", text)
    return paged("rtf", list(enumerate(parts, 1)), len(parts), "pages")


def _load(got: LoadInput) -> Extracted:
    return load_rtf(got.data, got.limits)


FORMAT = Format("rtf", "RTF", (".rtf",), _load, page="page", mime="application/rtf",
                magic=(Magic(b"{\\rtf", "an RTF document"),))
