"""HTML -> text in one streaming pass (stdlib ``html.parser``, no tree): scripts, styles and the like dropped,
the title kept, block elements on lines of their own.

No tree is built, so time and memory are linear in the file whatever its nesting (a 100k-deep ``<div>`` chain
reads as fast as a flat page); bytes are decoded the way BeautifulSoup decodes them (``UnicodeDammit``).
"""

from __future__ import annotations

import re
import warnings
from html.parser import HTMLParser

from .base import Extracted, single_page
from .record import Format, LoadInput

BLOCK_TAGS = frozenset((
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article", "header",
    "footer", "main", "aside", "nav", "pre", "blockquote", "dl", "dt", "dd", "figure", "figcaption", "title", "hr",
    "form", "fieldset", "address"))
SKIPPED = frozenset(("script", "style", "noscript", "template", "svg", "iframe", "object", "head"))
SPACES = re.compile(r"[ \t\f\v\u00a0]+")


class _Text(HTMLParser):
    """Collects text; inside a skipped element (counting nested ones of the same name) only a head's title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip: str | None = None  # the skipped element we are inside
        self.skip_depth = 0
        self.title: list[str] | None = None  # collecting the head's <title>

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.skip is not None:
            if tag == self.skip:
                self.skip_depth += 1
            elif self.skip == "head" and tag == "title":
                self.title = []
            return
        if tag in SKIPPED:
            self.skip, self.skip_depth = tag, 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in BLOCK_TAGS:
            self.out.append("\n\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if self.skip is None and tag == "br":
            self.out.append("\n")
        elif self.skip is None and tag in BLOCK_TAGS:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skip is not None:
            if tag == "title" and self.title is not None:
                self.out.append(" ".join("".join(self.title).split()) + "\n\n")
                self.title = None
            elif tag == self.skip:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip = None
            return
        if tag in BLOCK_TAGS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip is None:
            self.out.append(data)
        elif self.title is not None:
            self.title.append(data)


def decode_html(data: bytes | str) -> tuple[str, list[str]]:
    """The markup as text, decoded as BeautifulSoup would (declared charset, BOM, detection)."""
    if isinstance(data, str):
        return data, []
    from bs4 import UnicodeDammit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dammit = UnicodeDammit(data, is_html=True)
    if dammit.unicode_markup is None:
        return data.decode("utf-8", errors="replace"), ["some characters could not be decoded and were replaced"]
    notes = ["some characters could not be decoded and were replaced"] if dammit.contains_replacement_characters \
        else []
    return dammit.unicode_markup, notes


def read_html(data: bytes | str) -> tuple[str, list[str]]:
    markup, notes = decode_html(data)
    parser = _Text()
    parser.feed(markup)
    parser.close()
    if parser.title is not None:  # an unclosed <title> in the head
        parser.out.append(" ".join("".join(parser.title).split()) + "\n\n")
    text = "".join(parser.out)
    lines = [SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(lines), notes


def looks_html(data: bytes) -> bool:
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and any(
        tag in head for tag in (b"<html", b"<head>", b"<body")))


def _load(got: LoadInput) -> Extracted:
    return single_page("html", *read_html(got.data))


FORMAT = Format("html", "HTML", (".html", ".htm", ".xhtml"), _load, page="file", mime="text/html",
                description="an HTML page", detect=looks_html, reads_text=True)  # text named .html: a fragment
