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

from indexer import highlight_spans

PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
LINE = re.compile(r"[ \t]*\n[ \t]*")
SCORE_KIND = {"hybrid": "RRF", "dense": "cosine", "keyword": "BM25"}
PAGE_UNIT = {"pptx": "slide", "xlsx": "sheet", "epub": "chapter", "eml": "part", "image": "frame"}  # else "page"

CSS = """
<style>
.ms-head {display:flex; flex-wrap:wrap; align-items:baseline; gap:.45rem; margin-bottom:.25rem;}
.ms-rank {color:#8a8f98; font-size:.85rem; min-width:1.4rem;}
.ms-source {font-weight:600; font-size:1.02rem; word-break:break-all;}
.ms-badge {font-size:.72rem; padding:.05rem .45rem; border-radius:.6rem; background:#eef1f6; color:#3b4252;
  white-space:nowrap;}
.ms-badge.ms-type {background:#e6f0ff; color:#1c4fa0; text-transform:uppercase; letter-spacing:.03em;}
.ms-score {margin-left:auto; font-size:.78rem; color:#6b7280; font-variant-numeric:tabular-nums;}
.ms-snippet {white-space:pre-line; line-height:1.55; font-size:.95rem; color:#1f2328; overflow-wrap:anywhere;}
.ms-snippet mark, .ms-context mark {background:#ffe58a; color:inherit; padding:0 .1em; border-radius:.15em;}
.ms-context {white-space:pre-line; line-height:1.55; font-size:.92rem; overflow-wrap:anywhere;
  border-left:3px solid #d0d7de; padding-left:.75rem;}
.ms-context .ms-near {color:#6b7280;}
.ms-context .ms-hit {background:#f6f8fa;}
.ms-context .ms-page {display:block; color:#8a8f98; font-size:.75rem; margin:.3rem 0;}
.ms-kv {width:100%; border-collapse:collapse; font-size:.9rem;}
.ms-kv th {text-align:left; font-weight:500; color:#6b7280; padding:.3rem .8rem .3rem 0; white-space:nowrap;
  vertical-align:top; width:1%;}
.ms-kv td {padding:.3rem 0; overflow-wrap:anywhere;}
.ms-kv tr + tr {border-top:1px solid #eef0f3;}
.stMainBlockContainer {padding-top:3.2rem;}
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


def card_header_html(rank: int, source: str, page: int, pages: int | None, doc_type: str, score: float,
                     mode: str) -> str:
    unit = PAGE_UNIT.get(doc_type, "page")
    where = f"{unit} {page} of {pages}" if pages and pages > 1 else (f"page {page}" if doc_type == "pdf" else "")
    parts = [f'<span class="ms-rank">{rank}.</span>', f'<span class="ms-source">{escape(source)}</span>']
    if doc_type:
        parts.append(f'<span class="ms-badge ms-type">{escape(doc_type)}</span>')
    if where:
        parts.append(f'<span class="ms-badge ms-page">{escape(where)}</span>')
    parts.append(f'<span class="ms-score" title="{SCORE_KIND.get(mode, "")} score">'
                 f'{escape(SCORE_KIND.get(mode, "score"))} {score:.4f}</span>')
    return f'<div class="ms-head">{"".join(parts)}</div>'


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
