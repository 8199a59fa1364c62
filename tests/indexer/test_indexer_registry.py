"""The format registry (``indexer/formats.py``): each loader's record is validated, the registry refuses two
formats claiming the same thing, and everything that lists or recognises formats derives from it — README's
formats table included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexer.catalog import mime_type
from indexer.extract import Limits, extract
from indexer.formats import BY_KIND, DOC_TYPES, REGISTRY, SUPPORTED_SUFFIXES, accepted_types, check_registry
from indexer.loaders import text
from indexer.loaders.record import Format, Magic
from indexer.sniff import sniff

README = Path(__file__).resolve().parents[2] / "README.md"
LIMITS = Limits(max_pages=50, max_rows=50, max_unzipped_mb=8, max_zip_entries=100, max_xml_mb=8,
                max_image_megapixels=1, ocr_seconds=10, ocr_languages="eng")


def fmt(**changes) -> Format:
    odg = "application/vnd.oasis.opendocument.graphics"
    fields = dict(doc_type="odg", label="OpenDocument drawing", suffixes=(".odg",), load=lambda got: None, page="file",
                  mime=odg, zip_mimetype=odg)
    return Format(**{**fields, **changes})


def formats_table() -> list[tuple[str, str]]:
    """(format, what a page is) per row of README's table under "Formats and OCR"."""
    section = README.read_text().split("### Formats and OCR", 1)[1].split("\n### ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [(cells[0].strip(), cells[1].strip()) for cells in rows[2:]]  # after the header and its rule


def test_readme_lists_every_format_with_its_page():
    rows = formats_table()
    named = {}
    for f in REGISTRY:
        words = [f.doc_type, *(s.lstrip(".") for s in f.suffixes)]
        found = [(name, page) for name, page in rows if any(re.search(rf"\b{w}\b", name, re.I) for w in words)]
        assert len(found) == 1, f"README's formats table should have one row for {f.doc_type}, has {found}"
        name, page = found[0]
        assert re.search(rf"\b{f.page}s?\b", page), f"the row {name!r} should say a page is a {f.page}: {page!r}"
        named[name] = f
    assert set(named) == {name for name, _ in rows}, "a row of README's formats table names no registered format"


def test_everything_listed_derives_from_the_records():
    assert DOC_TYPES == tuple(f.doc_type for f in REGISTRY)
    assert SUPPORTED_SUFFIXES == {s: f.doc_type for f in REGISTRY for s in f.suffixes}
    listed = accepted_types()
    for f in REGISTRY:
        assert f"{f.label} ({' '.join(f.suffixes)})" in listed
        assert BY_KIND[f.kind].kind == f.kind
        for suffix in f.suffixes:
            assert mime_type(f.doc_type, "x" + suffix.upper()) == f.mime_for("x" + suffix)
        for magic in f.magic:  # a signature alone is recognised as its format
            assert sniff(magic.prefix + b"\x00" * 16).kind == f.kind
    assert (mime_type("rtf", "a.rtf"), mime_type("image", "x.dat")) == ("application/rtf", "application/octet-stream")
    assert BY_KIND["text"] is text.TXT  # what no format recognises is read as plain text


@pytest.mark.parametrize("name,doc_type", [("n.md", "md"), ("n.markdown", "md"), ("n.txt", "txt"),
                                           ("n.html", "html"), ("n.csv", "csv"), ("n", "txt")])
def test_the_suffix_picks_among_the_formats_that_read_text(name, doc_type):
    assert extract(b"heron,egret\nwalrus,seal\n", name, LIMITS).doc_type == doc_type


@pytest.mark.parametrize("changes,reason", [
    (dict(doc_type="Text"), "doc_type must be a lower-case name"),
    (dict(doc_type="text"), "other than 'text'"),
    (dict(suffixes=("odg",)), "suffixes must be distinct lower-case"),
    (dict(suffixes=(".odg", ".odg")), "suffixes must be distinct"),
    (dict(suffixes=()), "suffixes must be"),
    (dict(label=" "), "label must not be empty"),
    (dict(page="a page"), "page must be one lower-case word"),
    (dict(mime="text"), "bad MIME type 'text'"),
    (dict(mime_by_suffix=((".otg", "application/x-template"),)), "bad MIME type .* for .otg"),
    (dict(load="read"), "load and detect must be callables"),
    (dict(kind="text"), "kind is 'odg'"),
    (dict(zip_mimetype="", kind="odg"), "kind is 'text'"),
    (dict(zip_mimetype="", reads_text=True), "a text format reads text anyway"),
    (dict(magic=(b"PK",)), "magic must be Magic signatures"),
])
def test_a_record_is_validated(changes, reason):
    with pytest.raises(ValueError, match=reason):
        fmt(**changes)


def test_a_record_fills_in_its_kind_and_description():
    assert (fmt().kind, fmt().description) == ("odg", "text")
    signed = fmt(zip_mimetype="", magic=(Magic(b"\x89ODG", "an ODG file"),))
    assert (signed.kind, signed.description) == ("odg", "an ODG file")
    assert fmt(zip_mimetype="").kind == "text"
    with pytest.raises(ValueError, match="after_junk must be >= 0"):
        Magic(b"x", "x", after_junk=-1)
    with pytest.raises(ValueError, match="needs bytes and a description"):
        Magic(b"", "nothing")


@pytest.mark.parametrize("other,reason", [
    (fmt(doc_type="txt"), "doc_type 'txt' is claimed by both"),
    (fmt(suffixes=(".odg", ".md")), "suffix '.md' is claimed by both md and odg"),
    (fmt(zip_mimetype="application/epub+zip"), "ZIP mimetype 'application/epub\\+zip' is claimed by both"),
    (fmt(zip_mimetype="", zip_entry="word/document.xml"), "ZIP entry 'word/document.xml' is claimed by both"),
    (fmt(zip_mimetype="", magic=(Magic(b"%PDF-", "a PDF"),)), "signature b'%PDF-' is claimed by both pdf"),
])
def test_the_registry_refuses_two_formats_claiming_the_same(other, reason):
    with pytest.raises(ValueError, match=reason):
        check_registry(*REGISTRY, other)
    assert check_registry(*REGISTRY, fmt())[-1].doc_type == "odg"  # a new format is one more record


def test_the_registry_needs_a_text_format():
    with pytest.raises(ValueError, match="one format must read plain text"):
        check_registry(*(f for f in REGISTRY if f.kind != "text"))
