"""Untrusted document text -> safe HTML (pure functions, no Streamlit).

Every piece of document text goes through ``html.escape`` before it is wrapped in markup: highlighting works
on the raw text (where the hit's matched terms occur, found by the indexer's own word rules: whole words, and
substrings in Chinese, Japanese, Thai and the other scripts written without spaces), escapes the text between
and inside the matches, and only then adds ``<mark>``, so a document holding ``<script>`` or
``<img onerror=...>`` shows those characters as text.  The strings returned here are the only HTML the app
builds from document content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from indexer import Relevance, highlight_spans

PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
LINE = re.compile(r"[ \t]*\n[ \t]*")
PAGE_UNIT = {"pptx": "slide", "xlsx": "sheet", "epub": "chapter", "eml": "part", "image": "frame"}  # else "page"

# Theme-proof: every colour is the theme's text colour (``currentColor``: Streamlit sets it per theme) mixed with
# transparency, or a translucent tint under that text colour, so the same rules read at >= 4.5:1 on the light and
# the dark theme (checked in a browser in both: tests/app/test_app_theme_e2e.py).
MUTED = "color-mix(in srgb, currentColor 72%, transparent)"
CSS = f"""
<style>
.ms-head {{display:flex; flex-wrap:wrap; align-items:baseline; gap:.45rem; margin-bottom:.25rem;}}
.ms-rank {{color:{MUTED}; font-size:.85rem; min-width:1.4rem;}}
.ms-source {{font-weight:600; font-size:1.02rem; word-break:break-all;}}
.ms-badge {{font-size:.72rem; padding:.05rem .45rem; border-radius:.6rem; white-space:nowrap; color:inherit;
  background:color-mix(in srgb, currentColor 10%, transparent);}}
.ms-badge.ms-type {{background:rgba(28,131,225,.18); text-transform:uppercase; letter-spacing:.03em;}}
.ms-rel {{margin-left:auto; font-size:.75rem; padding:.05rem .5rem; border-radius:.6rem; white-space:nowrap;
  color:inherit; font-variant-numeric:tabular-nums; cursor:help;}}
.ms-rel-strong {{background:rgba(33,195,84,.24);}}
.ms-rel-good {{background:rgba(28,131,225,.18);}}
.ms-rel-weak, .ms-rel-unknown, .ms-rel-keyword {{background:color-mix(in srgb, currentColor 10%, transparent);}}
.ms-passage + .ms-passage {{margin-top:.55rem; padding-top:.55rem;
  border-top:1px dashed color-mix(in srgb, currentColor 22%, transparent);}}
.ms-where {{color:{MUTED}; font-size:.75rem; margin-bottom:.1rem;}}
.ms-more {{color:{MUTED}; font-size:.78rem; margin-top:.35rem;}}
.ms-note {{color:{MUTED}; font-size:.875rem; line-height:1.5; margin:.1rem 0 .4rem;}}
.ms-snippet {{white-space:pre-line; line-height:1.55; font-size:.95rem; color:inherit; overflow-wrap:anywhere;}}
.ms-snippet mark, .ms-context mark {{background:rgba(255,208,0,.38); color:inherit; padding:0 .1em;
  border-radius:.15em;}}
.ms-context {{white-space:pre-line; line-height:1.55; font-size:.92rem; overflow-wrap:anywhere;
  border-left:3px solid color-mix(in srgb, currentColor 25%, transparent); padding-left:.75rem;}}
.ms-context .ms-hit {{background:color-mix(in srgb, currentColor 8%, transparent);}}
.ms-context .ms-page {{display:block; color:{MUTED}; font-size:.75rem; margin:.3rem 0;}}
.ms-kv {{width:100%; border-collapse:collapse; font-size:.9rem;}}
.ms-kv th {{text-align:left; font-weight:500; color:{MUTED}; padding:.3rem .8rem .3rem 0; white-space:nowrap;
  vertical-align:top; width:1%;}}
.ms-kv td {{padding:.3rem 0; overflow-wrap:anywhere;}}
.ms-kv tr + tr {{border-top:1px solid color-mix(in srgb, currentColor 12%, transparent);}}
.stMainBlockContainer {{padding-top:3.2rem;}}
</style>
"""

def flow(text: str) -> str:
    """Document text for display: paragraphs (blank lines) kept, line breaks inside them (PDF layout) joined."""
    parts = PARAGRAPH.split(text)
    return "\n\n".join(LINE.sub(" ", part) for part in parts)


def tidy(text: str) -> str:
    return flow(text).strip()


def highlight(text: str, terms: Iterable[str]) -> str:
    """``text`` HTML-escaped, with the occurrences of ``terms`` (a hit's matched terms) in ``<mark>``: words equal
    to one (case-insensitively), and a term of a script without spaces wherever it occurs (北京 in 我在北京大学)."""
    out: list[str] = []
    pos = 0
    for start, end in highlight_spans(text, terms):
        out.append(escape(text[pos:start]))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


def snippet_html(text: str, terms: Iterable[str]) -> str:
    return f'<div class="ms-snippet">{highlight(tidy(text), terms)}</div>'


def where_label(page: int, pages: int | None, doc_type: str) -> str:
    """Where in its file a passage is ("slide 3 of 12", "page 2"), or "" for a file without pages."""
    unit = PAGE_UNIT.get(doc_type, "page")
    return f"{unit} {page} of {pages}" if pages and pages > 1 else (f"page {page}" if doc_type == "pdf" else "")


def relevance_html(rel: Relevance) -> str:
    return f'<span class="ms-rel ms-rel-{escape(rel.level)}" title="{escape(rel.detail)}">{escape(rel.label)}</span>'


def card_header_html(rank: int, source: str, page: int, pages: int | None, doc_type: str, rel: Relevance) -> str:
    """A result card's first line: rank, file name, type and place badges, and the relevance label (right)."""
    where = where_label(page, pages, doc_type)
    parts = [f'<span class="ms-rank">{rank}.</span>', f'<span class="ms-source">{escape(source)}</span>']
    if doc_type:
        parts.append(f'<span class="ms-badge ms-type">{escape(doc_type)}</span>')
    if where:
        parts.append(f'<span class="ms-badge ms-page">{escape(where)}</span>')
    parts.append(relevance_html(rel))
    return f'<div class="ms-head">{"".join(parts)}</div>'


def passages_html(passages: Sequence[tuple[str, str, Sequence[str]]], more: int = 0) -> str:
    """A document's best passages, each ``(where, text, matched_terms)`` (``where`` is shown above all passages
    but the first, whose place is in the card's header), then how many more of its passages matched."""
    out = []
    for i, (where, text, terms) in enumerate(passages):
        label = f'<div class="ms-where">{escape(where)}</div>' if where and i else ""
        out.append(f'<div class="ms-passage">{label}{snippet_html(text, terms)}</div>')
    if more > 0:
        out.append(f'<div class="ms-more">{more} more passage{"s" if more > 1 else ""} of this file matched</div>')
    return "".join(out)


def context_html(hit_index: int, hit_page: int, hit_start: int, hit_end: int,
                 chunks: Sequence[tuple[int, int, int, int, str, Sequence[str]]]) -> str:
    """The hit's chunk with its neighbours, overlaps removed.

    ``chunks`` are ``(chunk_index, page, char_start, char_end, text, matched_terms)`` in document order; the
    neighbours' text is trimmed where it overlaps the hit's (same page), and page changes are marked.
    """
    out: list[str] = []
    last_page = None
    for index, page, start, end, text, terms in chunks:
        if index < hit_index and page == hit_page and end > hit_start:
            text = text[:max(0, hit_start - start)]
        elif index > hit_index and page == hit_page and start < hit_end:
            text = text[max(0, hit_end - start):]
        if last_page is not None and page != last_page:
            out.append(f'<span class="ms-page">page {page}</span>')
        last_page = page
        css = "ms-hit" if index == hit_index else "ms-near"
        out.append(f'<span class="{css}">{highlight(flow(text), terms)}</span>')
    return f'<div class="ms-context">{"".join(out)}</div>'


def note_html(text: str) -> str:
    """A small explanatory line (escaped), in the theme's muted text colour: Streamlit's own caption is fainter than
    4.5:1 on the light theme."""
    return f'<div class="ms-note">{escape(text)}</div>'


def kv_table_html(rows: dict) -> str:
    """A two-column name/value table, both escaped."""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows.items())
    return f'<table class="ms-kv">{body}</table>'


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: str) -> str:
    """Untrusted text (file names, queries) for Streamlit markdown: every markdown/HTML special backslashed."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


def local_time(iso: str) -> str:
    """An ISO instant (UTC) as local ``YYYY-MM-DD HH:MM``; the input unchanged if it does not parse."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, AttributeError):
        return iso or ""


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
