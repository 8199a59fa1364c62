"""Bytes -> text: UTF-8 or UTF-16 (with a BOM) as such; anything else through charset-normalizer's detection.
Plain text, Markdown and the other text formats (JSON / NDJSON, XML, reStructuredText, Org, YAML, source code and
configuration files) are read so: their markup is words a search may want (keys, tags, names).

They are streamed: the bytes are decoded a block (``BLOCK`` bytes) at a time and cut into pages of at most
``Limits.text_page_chars`` characters (``MOESEARCH_TEXT_PAGE_CHARS``), each ended at the last line break before
the limit (or at the limit in a line that long), so a text file's "page" is such a stretch and a file shorter
than one page is one page.  Only one page is ever normalised at a time, and reading stops as soon as the text
passes ``MOESEARCH_MAX_CHARS``."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from .base import Extracted, ExtractError, Limits, normalize, paged, single_page
from .record import Format, LoadInput

PREFERRED = "cp1252"  # Windows-1252, among equally plausible detections
BLOCK = 1 << 20  # bytes decoded at a time


def decode_text(data: bytes) -> tuple[str, list[str]]:
    """The text and notes (which encoding was detected when it was not UTF-8)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise ExtractError(f"broken UTF-16 text at byte {exc.start}") from None
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ExtractError(f"not text in any encoding that could be detected: byte 0x{data[first_bad]:02x} at offset "
                           f"{first_bad} is not valid UTF-8; re-save the file as UTF-8") from None
    # short texts leave many code pages equally plausible: then take the most common one for Western text
    tied = [m for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence]
    pick = next((m for m in tied if m.encoding == PREFERRED), best)
    return str(pick), [f"not UTF-8: decoded as {pick.encoding} (detected)"]


def _blocks(data: bytes) -> tuple[Iterator[str], list[str]]:
    """The text a block at a time, and the notes (how it was decoded).  UTF-8 (and UTF-16 with a BOM) is decoded
    incrementally; anything else is detected and decoded whole (``decode_text``)."""
    encoding, skip = "utf-8", 0
    if data.startswith(b"\xef\xbb\xbf"):
        skip = 3
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif not _utf8(data):
        text, notes = decode_text(data)
        return iter((text,)), notes

    def decoded() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(encoding)()
        view = memoryview(data)
        for at in range(skip, len(data), BLOCK):
            try:
                yield decoder.decode(view[at:at + BLOCK], final=at + BLOCK >= len(data))
            except UnicodeDecodeError as exc:
                what = "UTF-16" if encoding == "utf-16" else "UTF-8"
                raise ExtractError(f"broken {what} text at byte {at + exc.start}") from None

    return decoded(), []


def _utf8(data: bytes) -> bool:
    """Whether the bytes are UTF-8 (checked a block at a time, without decoding all of them into one string)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for at in range(0, len(data), BLOCK):
            decoder.decode(view[at:at + BLOCK], final=at + BLOCK >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def text_pages(blocks: Iterator[str], limits: Limits) -> Iterator[tuple[int, str]]:
    """``(page number, normalised text)`` pages of at most ``limits.text_page_chars`` characters, each cut after the
    last line break before the limit (at the limit if the page's second half has none); stops with an
    ``ExtractError`` naming ``MOESEARCH_MAX_CHARS`` once more text than that has been read."""
    size, buf, number, read = limits.text_page_chars, "", 0, 0
    for block in blocks:
        read += len(block)
        limits.check_chars(read)
        buf += block
        while len(buf) >= size:
            cut = buf.rfind("\n", size // 2, size) + 1 or size
            number += 1
            yield number, normalize(buf[:cut])
            buf = buf[cut:]
    if buf or not number:
        yield number + 1, normalize(buf)


def load_text(doc_type: str, got: LoadInput) -> Extracted:
    """A text file as pages (one page when it is shorter than ``MOESEARCH_TEXT_PAGE_CHARS``)."""
    blocks, notes = _blocks(got.data)
    pages = list(text_pages(blocks, got.limits))
    if len(pages) == 1:
        return single_page(doc_type, pages[0][1], notes)
    return paged(doc_type, pages, len(pages), "pages", notes)


def _load_txt(got: LoadInput) -> Extracted:
    return load_text("txt", got)


def _load_md(got: LoadInput) -> Extracted:
    return load_text("md", got)


def _text_format(doc_type: str, label: str, suffixes: tuple[str, ...], mime: str, **more) -> Format:
    """A format whose files are text, told apart by their suffix only."""
    return Format(doc_type, label, suffixes, lambda got: load_text(doc_type, got), page="page", mime=mime, **more)


# text formats: any file that no other format recognises is text, read as plain text unless its suffix says more
TXT = Format("txt", "plain text (any encoding)", (".txt", ".text"), _load_txt, page="page", mime="text/plain")
MARKDOWN = Format("md", "Markdown", (".md", ".markdown"), _load_md, page="page", mime="text/markdown")
JSON = _text_format("json", "JSON / NDJSON", (".json", ".ndjson", ".jsonl"), "application/json",
                    mime_by_suffix=((".ndjson", "application/x-ndjson"), (".jsonl", "application/x-ndjson")))
XML = _text_format("xml", "XML", (".xml",), "application/xml")
RST = _text_format("rst", "reStructuredText", (".rst",), "text/x-rst")
ORG = _text_format("org", "Org mode", (".org",), "text/x-org")
YAML = _text_format("yaml", "YAML", (".yaml", ".yml"), "application/yaml")
# source code and configuration, served as plain text (never as a script a browser would run)
CODE = _text_format("code", "source code", (
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".kt", ".kts", ".scala", ".groovy",
    ".c", ".h", ".cpp", ".cc", ".cxx", ".hpp", ".hh", ".cs", ".m", ".swift", ".go", ".rs", ".rb", ".php", ".pl",
    ".pm", ".lua", ".r", ".jl", ".dart", ".ex", ".exs", ".erl", ".hs", ".clj", ".sh", ".bash", ".zsh", ".fish",
    ".ps1", ".bat", ".sql", ".css", ".scss", ".less", ".vue", ".svelte", ".toml", ".ini", ".cfg", ".tex",
), "text/plain")
