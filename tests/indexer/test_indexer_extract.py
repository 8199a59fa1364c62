from __future__ import annotations

import pytest
from indexer_testfiles import (
    corrupt,
    make_docx,
    make_encrypted_pdf,
    make_image_pdf,
    make_pdf,
    make_png,
    sentences,
)

from indexer.extract import ExtractError, extract, garbage_ratio, normalize
from indexer.sniff import sniff


def test_pdf_pages_keep_their_numbers_and_skip_empty_pages():
    data = make_pdf([sentences(5, 1, "alpha"), "", sentences(5, 2, "gamma")])
    got = extract(data, "report.pdf")
    assert got.doc_type == "pdf" and got.page_count == 3
    assert [n for n, _ in got.pages] == [1, 3]
    assert "alpha" in got.pages[0][1] and "gamma" in got.pages[1][1]
    assert any("1 of 3 pages have no text" in n for n in got.notes)


def test_pdf_with_owner_password_only_opens():
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Readable without a password."]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    assert "Readable" in extract(out.getvalue(), "x.pdf").pages[0][1]


def test_text_markdown_html_docx():
    assert extract("héllo wörld\r\nnext".encode(), "a.txt").pages == ((1, "héllo wörld\nnext"),)
    assert extract("\ufeffwith BOM".encode(), "a.txt").pages[0][1] == "with BOM"
    assert extract("hi there".encode("utf-16"), "a.txt").pages[0][1] == "hi there"
    md = extract(b"# Title\n\nSome *markdown* text.", "notes.md")
    assert md.doc_type == "md" and "Some *markdown* text." in md.pages[0][1]
    html = extract(b"<!DOCTYPE html><html><head><title>Cats</title><style>p{}</style></head><body><h1>Big</h1>"
                   b"<p>Cats are <b>small</b> mammals.</p><script>var x = 1;</script><p>Second</p></body></html>",
                   "page.html")
    text = html.pages[0][1]
    assert html.doc_type == "html" and "Cats are small mammals." in text and "var x" not in text
    assert text.startswith("Cats") and "Big" in text and "\n\nSecond" in text
    frag = extract(b"<p>Only a fragment</p>", "frag.html")
    assert frag.doc_type == "html" and frag.pages[0][1] == "Only a fragment"
    docx = extract(make_docx(["First paragraph.", "Second one."], [["a", "b"], ["c", "d"]]), "w.docx")
    assert docx.doc_type == "docx" and "First paragraph.\n\nSecond one." in docx.pages[0][1]
    assert "a | b" in docx.pages[0][1]


def test_type_comes_from_content_not_extension():
    got = extract(make_pdf(["A PDF named as text."]), "oops.txt")
    assert got.doc_type == "pdf" and any("named .txt" in n for n in got.notes)
    got = extract(b"plain words", "notes.xyz")
    assert got.doc_type == "txt" and any("unsupported extension .xyz" in n for n in got.notes)
    got = extract(b"plain words", "README")  # no extension, text: nothing to say
    assert got.doc_type == "txt" and got.notes == ()
    got = extract(make_pdf(["A PDF without an extension."]), "scan")
    assert got.doc_type == "pdf" and any("(no extension)" in n for n in got.notes)
    assert sniff(make_docx(["x"])).kind == "docx"
    for text in (b"BMI and obesity in adults", b"MZ-1 trial results", b"ID3 tags", b"RIFF variants"):
        assert sniff(text).kind == "text", text  # printable signatures only count in binary data
    assert sniff(b"A note:\nevery PDF starts with %PDF-1.7 and ends with %%EOF.").kind == "text"
    assert sniff(b"\x00\x01junk%PDF-1.4 ...").kind == "pdf"
    assert sniff(make_png()).description == "a PNG image"


@pytest.mark.parametrize("data,name,reason", [
    (b"", "e.pdf", "empty file"),
    (b"   \n\t ", "blank.txt", "no text"),
    (make_png(), "photo.pdf", "named .pdf but the content is a PNG image"),
    (b"\x00\x01\x02binary\x00" * 50, "blob.pdf", "named .pdf but the content is binary data"),
    (make_png(), "photo.png", "OCR found no text in a PNG image|a PNG image needs OCR"),  # a red square
    (make_png()[:40], "cut.png", "corrupted PNG image"),
    ("".join(chr(c) for c in range(1, 32) if chr(c) not in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85") * 20 + "ok",
     "ctl.txt", "looks garbled"),
    (b"PK\x03\x04 not really a zip", "w.docx", "damaged or truncated ZIP"),
])
def test_bad_inputs_say_why(data, name, reason):
    if isinstance(data, str):
        data = data.encode()
    with pytest.raises(ExtractError, match=reason):
        extract(data, name)


def test_bad_pdfs():
    good = make_pdf([sentences(20, 1), sentences(20, 2)])
    with pytest.raises(ExtractError, match="truncated PDF"):
        extract(good[: len(good) // 2], "t.pdf")
    for at in (0.3, 0.5):
        with pytest.raises(ExtractError, match="corrupted PDF"):
            extract(corrupt(good, at), "c.pdf")
    with pytest.raises(ExtractError, match="encrypted PDF: it needs a password"):
        extract(make_encrypted_pdf("secret words"), "enc.pdf")
    with pytest.raises(ExtractError, match="no text layer"):
        extract(make_image_pdf(), "scan.pdf")


def test_normalize_and_garbage_ratio():
    assert normalize("a  \r\nb\r\n\n\n\nc\x00") == "a\nb\n\nc"
    assert garbage_ratio("plain text") == 0.0
    assert garbage_ratio("\ufffd\ufffdab") == 0.5
