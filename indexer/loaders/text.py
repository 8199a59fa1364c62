"""Bytes -> text: UTF-8 or UTF-16 (with a BOM) as such; anything else through charset-normalizer's detection.
Plain text and Markdown are read so, as one page."""

from __future__ import annotations

from .base import Extracted, ExtractError, single_page
from .record import Format, LoadInput

PREFERRED = "cp1252"  # Windows-1252, among equally plausible detections


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


def _load_txt(got: LoadInput) -> Extracted:
    return single_page("txt", *decode_text(got.data))


def _load_md(got: LoadInput) -> Extracted:
    return single_page("md", *decode_text(got.data))


# text formats: any file that no other format recognises is text, read as plain text unless its suffix says more
TXT = Format("txt", "plain text (any encoding)", (".txt", ".text"), _load_txt, page="file", mime="text/plain")
MARKDOWN = Format("md", "Markdown", (".md", ".markdown"), _load_md, page="file", mime="text/markdown")
