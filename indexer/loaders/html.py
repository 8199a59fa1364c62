"""HTML -> text with BeautifulSoup: scripts and styles dropped, block elements on lines of their own."""

from __future__ import annotations

import re
import warnings

BLOCK_TAGS = ("p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article",
              "header", "footer", "main", "aside", "nav", "pre", "blockquote", "dl", "dt", "dd", "figure",
              "figcaption", "title", "hr", "form", "fieldset", "address")


def read_html(data: bytes | str) -> tuple[str, list[str]]:
    from bs4 import BeautifulSoup, NavigableString

    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(data, "html.parser")
    if getattr(soup, "contains_replacement_characters", False):
        notes.append("some characters could not be decoded and were replaced")
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", "object", "head"]):
        if tag.name == "head":
            title = tag.find("title")
            if title is not None:
                tag.insert_before(NavigableString(title.get_text(" ", strip=True) + "\n\n"))
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before(NavigableString("\n\n"))
        tag.insert_after(NavigableString("\n\n"))
    text = soup.get_text()
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines), notes
