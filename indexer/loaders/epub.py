"""EPUB -> one page per chapter (ebooklib): the spine's documents in reading order, each as HTML text; the
navigation document is left out, and chapters keep their spine position as page number."""

from __future__ import annotations

import io
import warnings

from .base import Extracted, ExtractError, Limits, paged
from .html import read_html
from .record import Format, LoadInput
from .zipsafe import check_zip


def load_epub(data: bytes, limits: Limits) -> Extracted:
    import ebooklib
    from ebooklib import epub

    check_zip(data, limits, "EPUB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    except Exception as exc:  # ebooklib raises EpubException, KeyError, lxml errors ...
        raise ExtractError(f"corrupted EPUB: {type(exc).__name__}: {str(exc)[:160]}") from None
    chapters = []
    for idref, *_ in book.spine:
        item = book.get_item_with_id(idref)
        if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT and not isinstance(item, epub.EpubNav):
            chapters.append(item)
    limits.check_pages(len(chapters), "chapters")
    pages: list[tuple[int, str]] = []
    notes: list[str] = []
    for number, item in enumerate(chapters, 1):
        text, more = read_html(item.get_content())
        pages.append((number, text))
        notes += [n for n in more if n not in notes]
    return paged("epub", pages, len(chapters), "chapters", notes)


def _load(got: LoadInput) -> Extracted:
    return load_epub(got.data, got.limits)


FORMAT = Format("epub", "EPUB", (".epub",), _load, page="chapter", mime="application/epub+zip",
                description="an EPUB book", zip_mimetype="application/epub+zip")
