"""The record each loader module declares for its format (``FORMAT = Format(...)``): everything the rest of the
indexer knows about a file type, in one place.  ``indexer.formats`` collects the records; sniffing (how a file is
recognised), extraction dispatch, the accepted types, MIME types and the Ingest page's list all derive from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

from .base import Extracted, Limits, OcrProgress

NAME = re.compile(r"[a-z][a-z0-9]*")
SUFFIX = re.compile(r"\.[a-z0-9]+")
MIME = re.compile(r"[a-z]+/[a-z0-9.+-]+")
TEXT = "text"  # the sniffed kind of a file none of the recognised formats claims: it is read as text


@dataclass(frozen=True)
class Magic:
    """A signature: the bytes a file of the format starts with and how messages call such a file.  ``after_junk``
    > 0 also accepts the signature that far into the file when only non-text bytes precede it (PDF readers do)."""

    prefix: bytes
    description: str  # "a PNG image"
    after_junk: int = 0

    def __post_init__(self) -> None:
        if not self.prefix or not self.description.strip():
            raise ValueError(f"a signature needs bytes and a description, got {self.prefix!r}, {self.description!r}")
        if self.after_junk < 0:
            raise ValueError(f"after_junk must be >= 0, got {self.after_junk}")


@dataclass(frozen=True)
class LoadInput:
    """What a loader is given: the file's bytes, its name (a hint only), what sniffing says it is, the caps."""

    data: bytes
    name: str
    description: str  # from sniffing, for messages: "a PNG image"
    limits: Limits
    progress: OcrProgress | None = None  # (pages OCR'd so far, pages to OCR)

    @property
    def suffix(self) -> str:
        """The name's extension, lower case ("" without one)."""
        return PurePath(self.name).suffix.lower()


@dataclass(frozen=True)
class Format:
    """One accepted file type.

    A file is recognised by its content: by a signature (``magic``), by what a ZIP container holds (``zip_entry``
    names a member that marks it, ``zip_mimetype`` is the container's ``mimetype`` member), or by ``detect`` (a
    test on the bytes, tried after the signatures, in registry order).  A format recognised none of these ways is
    a text format (``kind="text"``): its files are text, told apart only by their suffix.
    """

    doc_type: str  # what documents of this format are stored as ("pdf"); the search filter's value
    label: str  # what people call it, for the accepted-types list: "PDF (scanned pages by OCR)"
    suffixes: tuple[str, ...]  # lower case, with the dot; the first is the usual one
    load: Callable[[LoadInput], Extracted]
    page: str  # what one "page" of a citation is: "page", "slide", "sheet", "chapter", "part", "frame", "file"
    mime: str  # the MIME type the original is served with
    description: str = ""  # what sniffing calls such a file, for messages ("a Word document (DOCX)")
    kind: str = ""  # the sniffed kind its files have: its doc_type, or "text" (set from the recognisers)
    magic: tuple[Magic, ...] = ()
    zip_entry: str = ""
    zip_mimetype: str = ""
    detect: Callable[[bytes], bool] | None = None
    reads_text: bool = False  # a text file named with its suffix is read as this format (an HTML fragment)
    mime_by_suffix: tuple[tuple[str, str], ...] = ()  # (suffix, MIME type) where it differs from ``mime``
    text_name: str = "the text"  # what the garbled-text check calls the extracted text

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.doc_type) or self.doc_type in (TEXT, "binary"):
            raise ValueError(f"doc_type must be a lower-case name other than 'text'/'binary', got {self.doc_type!r}")
        if not self.label.strip():
            raise ValueError(f"{self.doc_type}: label must not be empty")
        if not self.suffixes or len(set(self.suffixes)) != len(self.suffixes) \
                or not all(SUFFIX.fullmatch(s) for s in self.suffixes):
            raise ValueError(f"{self.doc_type}: suffixes must be distinct lower-case '.ext', got {self.suffixes}")
        if not callable(self.load) or (self.detect is not None and not callable(self.detect)):
            raise ValueError(f"{self.doc_type}: load and detect must be callables")
        if not NAME.fullmatch(self.page):
            raise ValueError(f"{self.doc_type}: page must be one lower-case word, got {self.page!r}")
        for suffix, mime in ((None, self.mime), *self.mime_by_suffix):
            if not MIME.fullmatch(mime) or (suffix is not None and suffix not in self.suffixes):
                raise ValueError(f"{self.doc_type}: bad MIME type {mime!r} for {suffix or 'the format'}")
        if not all(isinstance(m, Magic) for m in self.magic):
            raise ValueError(f"{self.doc_type}: magic must be Magic signatures")
        recognised = bool(self.magic or self.zip_entry or self.zip_mimetype or self.detect)
        kind = self.doc_type if recognised else TEXT
        if self.kind not in ("", kind):
            raise ValueError(f"{self.doc_type}: kind is {kind!r} (from how it is recognised), got {self.kind!r}")
        object.__setattr__(self, "kind", kind)
        if not self.description:
            object.__setattr__(self, "description", self.magic[0].description if self.magic else "text")
        if self.reads_text and kind == TEXT:
            raise ValueError(f"{self.doc_type}: a text format reads text anyway; reads_text is for the others")

    def reads(self, kind: str) -> bool:
        """Whether a file of this sniffed kind, named with this format's suffix, is read as this format."""
        return kind == self.kind or (kind == TEXT and self.reads_text)

    def mime_for(self, name: str) -> str:
        return dict(self.mime_by_suffix).get(PurePath(name).suffix.lower(), self.mime)
