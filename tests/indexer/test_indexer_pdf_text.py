"""PDF text that keeps its words (issue #25): PDFium's text where pypdf runs the words together, pypdf's where it
is better, ligatures spelled out, line-end hyphens joined, running headers/footers left out, columns in order.
The PDFs are written here (``indexer_pdffiles.py``) the way LaTeX manuals place their words."""

from __future__ import annotations

import io

import pytest
from indexer_pdffiles import book, two_columns, wrap
from indexer_testfiles import make_encrypted_pdf, sentences

from indexer.extract import extract
from indexer.loaders.base import ExtractError
from indexer.loaders.pdf_text import better, clean, drop_repeated_lines, runon_counts, runon_rate


def _pages(n: int, topic: str = "") -> list[list[str]]:
    return [wrap(sentences(6, seed, topic)) for seed in range(n)]


def _pypdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_runon_measure():
    assert runon_counts("the field ends at the end") == (0, 6)
    assert runon_counts("groupallocateddynamicallyanddifferentlyoneachsystem is long") == (1, 3)
    assert runon_counts("getTextPageFromDocumentNow") == (0, 6)  # camelCase identifiers are words
    assert runon_counts("系统管理员手册系统管理员手册系统管理员手册") == (0, 0)  # scripts without spaces do not count
    assert runon_rate("") == 0.0


def test_words_run_together_by_pypdf_are_read_apart():
    data = book(_pages(3, "heron"), header="", footer="")
    assert runon_rate(_pypdf_text(data)) > 0.2  # the fixture does what the Debian manuals do to pypdf
    got = extract(data, "manual.pdf")
    text = "\n".join(t for _, t in got.pages)
    assert runon_rate(text) == 0.0
    assert sentences(6, 0, "heron").split()[:8] == text.split()[:8]


def test_the_better_engine_is_kept_per_page():
    spaced, run = "the field ends at the end of the continuation line", "thefieldendsattheendofthecontinuationline"
    assert better(run, spaced) == "pypdf"
    assert better(spaced, run) == "pdfium"
    assert better(spaced, spaced) == "pdfium"  # a tie: PDFium
    assert better("", spaced) == "pypdf"  # PDFium lost the text
    assert better("the \ufffd\ufffd\ufffd \ufffd\ufffd field", "the odd field") == "pypdf"  # unreadable characters


def test_ligatures_and_line_end_hyphens():
    lines = ["The \ufb01rst \ufb02ow of o\ufb03ce work keeps the dis-", "tribution of words, and US-",
             "ASCII keeps its hyphen."]
    text = extract(book([lines], header="", footer=""), "l.pdf").pages[0][1]
    assert "first flow of office work" in text and "distribution" in text and "US-ASCII" in text
    assert not {"\ufb01", "\ufb02", "\ufb03", "\ufffe"} & set(text)
    # pypdf's form of the same: the hyphen and the line break are still there
    assert clean("the dis-\ntribution of US-\nASCII, \ufb01ne") == "the distribution of US-\nASCII, fine"


def test_running_headers_and_footers_left_out():
    pages = _pages(6, "egret")
    data = book(pages, header="Field Guide to Egrets, Release 2.{n}", footer="Page {n}")
    got = extract(data, "guide.pdf")
    texts = dict(got.pages)
    assert [n for n, t in got.pages if "Field Guide to Egrets" in t] == [1]  # kept where it first appears
    assert not any(f"Page {n}" in texts[n] for n in range(2, 7))
    assert all(wrap(sentences(6, n - 1, "egret"))[0] in texts[n] for n in range(1, 7))
    assert any("running headers/footers" in note for note in got.notes)
    short = extract(book(_pages(3), header="Short Note"), "short.pdf")  # under 4 pages: nothing is dropped
    assert all("Short Note" in t for _, t in short.pages)


def test_headers_of_odd_or_even_pages_only():
    pages = [(n, f"{'Even Head' if n % 2 == 0 else 'Odd Head ' + str(n)}\n{sentences(3, n)}\n{n}")
             for n in range(1, 9)]
    kept, dropped = drop_repeated_lines(pages)
    assert sum("Even Head" in t for _, t in kept) == 1 and sum("Odd Head" in t for _, t in kept) == 1
    assert {"Even Head", "Odd Head 3", "2"} <= set(dropped)
    assert all(sentences(3, n) in t for n, t in kept)


def test_two_columns_keep_their_order():
    left, right = wrap(sentences(4, 1, "osprey"), 40), wrap(sentences(4, 2, "plover"), 40)
    text = extract(two_columns(left, right), "cols.pdf").pages[0][1]
    assert text.split("\n") == left + right


def test_encrypted_pdfs():
    with pytest.raises(ExtractError, match="encrypted PDF: it needs a password"):
        extract(make_encrypted_pdf("secret words"), "enc.pdf")
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(book(_pages(1, "curlew"), header="", footer=""))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    text = extract(out.getvalue(), "owner-only.pdf").pages[0][1]
    assert runon_rate(text) == 0.0 and text.split()[:8] == sentences(6, 0, "curlew").split()[:8]
