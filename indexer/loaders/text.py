"""Bytes -> text: UTF-8 or UTF-16 (with a BOM) as such; anything else through charset-normalizer's detection.
Plain text, Markdown and the other text formats (JSON / NDJSON, XML, reStructuredText, Org, YAML, source code and
configuration files) are read so, as one page: their markup is words a search may want (keys, tags, names)."""

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


def _text_format(doc_type: str, label: str, suffixes: tuple[str, ...], mime: str, **more) -> Format:
    """A format whose files are text, told apart by their suffix only."""
    return Format(doc_type, label, suffixes, lambda got: single_page(doc_type, *decode_text(got.data)), page="file",
                  mime=mime, **more)


# text formats: any file that no other format recognises is text, read as plain text unless its suffix says more
TXT = Format("txt", "plain text (any encoding)", (".txt", ".text"), _load_txt, page="file", mime="text/plain")
MARKDOWN = Format("md", "Markdown", (".md", ".markdown"), _load_md, page="file", mime="text/markdown")
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
