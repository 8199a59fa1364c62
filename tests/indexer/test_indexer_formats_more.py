"""The legacy, OpenDocument and text formats through the pipeline (found by keyword search on the right page /
slide / sheet / part), a password-protected file of every format failing alone with "encrypted" in its reason,
and an odd part of a DOCX / PPTX / XLSX (a merged table, a broken slide or sheet) left out with a note while the
rest is indexed.  Fixtures are made here (``legacy_testfiles``, ``indexer_testfiles``)."""

from __future__ import annotations

import io
import zipfile

import pytest
from indexer_testfiles import make_docx, make_encrypted_pdf
from legacy_testfiles import (
    encrypt_ooxml,
    make_doc,
    make_msg,
    make_odf,
    make_ppt,
    make_xls,
    odf_paragraphs,
    odf_row,
    with_filepass,
    zip_encrypted,
)
from test_indexer_formats import PPTX, XLSX, make_pptx, make_xlsx

from indexer.extract import ExtractError, Limits, extract

LIMITS = Limits(max_pages=50, max_rows=50, max_unzipped_mb=8, max_zip_entries=100, max_xml_mb=8,
                max_image_megapixels=1, ocr_seconds=10, ocr_languages="eng")


def test_new_formats_are_found_on_their_page(pipeline, tmp_path):
    slides = [("Quarterly review", "Budget on track", "", ""), ("Field season", "Tents", "Kestrel migration", "")]
    deck = ("<draw:page><draw:frame><draw:text-box>" + odf_paragraphs("Opening") + "</draw:text-box></draw:frame>"
            "</draw:page><draw:page><draw:frame><draw:text-box>" + odf_paragraphs("Parrotfish graze the coral")
            + "</draw:text-box></draw:frame></draw:page>")
    files = {
        "report.doc": make_doc("Heron survey\r\x0cThe walrus colony grew\r"),
        "deck.ppt": make_ppt(slides),
        "stock.xls": make_xls({"Budget": [["Item"], ["tents"]], "Inventory": [["Part"], ["flux capacitor"]]}),
        "mail.msg": make_msg("Tides", "Dear team", [("tides.txt", b"Spring tide peaks at the sandbar", "text/plain")]),
        "letter.odt": make_odf("text", odf_paragraphs("Intro", "<text:soft-page-break/>Lighthouse keeper notes")),
        "sheet.ods": make_odf("spreadsheet", '<table:table table:name="A">' + odf_row("x") + "</table:table>"
                              '<table:table table:name="B">' + odf_row("Bird") + odf_row("osprey") + "</table:table>"),
        "slides.odp": make_odf("presentation", deck),
        "tool.py": b"def count_herons(marsh):\n    return len(marsh.egrets)\n",
        "data.json": b'{"species": "okapi", "site": "sanctuary"}',
        "locked.xlsx": encrypt_ooxml(make_xlsx(XLSX)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = pipeline.ingest([tmp_path / name for name in files])
    status = {f.name: f for f in report.files}
    assert status["locked.xlsx"].status == "failed" and "encrypted" in status["locked.xlsx"].reason
    assert all(f.status == "ok" for n, f in status.items() if n != "locked.xlsx"), \
        [(f.name, f.reason) for f in report.files]

    def top(query: str, source: str):
        hits = [h for h in pipeline.search(query, k=5, mode="keyword") if h.source == source]
        assert hits, f"{query!r} not found in {source}"
        return hits[0]

    assert top("walrus colony", "report.doc").page == 2
    assert top("kestrel migration", "deck.ppt").page == 2
    assert top("flux capacitor", "stock.xls").page == 2
    assert top("spring tide sandbar", "mail.msg").page == 2
    assert top("lighthouse keeper", "letter.odt").page == 2
    assert top("osprey", "sheet.ods").page == 2
    assert top("parrotfish coral", "slides.odp").page == 2
    assert "count_herons" in top("count_herons", "tool.py").text
    assert top("okapi sanctuary", "data.json").page == 1
    assert {d.doc_type for d in pipeline.documents()} == {"doc", "ppt", "xls", "msg", "odt", "ods", "odp", "code",
                                                           "json"}


@pytest.mark.parametrize("name,make", [
    ("locked.docx", lambda: encrypt_ooxml(make_docx(["secret plans"]))),
    ("locked.xlsx", lambda: encrypt_ooxml(make_xlsx(XLSX))),
    ("locked.pptx", lambda: encrypt_ooxml(make_pptx(PPTX))),
    ("zipped.docx", lambda: zip_encrypted(make_docx(["secret plans"]))),
    ("locked.doc", lambda: make_doc("secret\r", flags=0x0300)),
    ("locked.xls", lambda: with_filepass(make_xls({"S": [["a"], ["b"]]}))),
    ("locked.ppt", lambda: make_ppt([("a", "b", "c", "")], streams={"EncryptedSummary": bytes(64)})),
    ("locked.msg", lambda: make_msg("x", "", message_class="IPM.Note.SMIME")),
    ("locked.odt", lambda: make_odf("text", "", encrypted=True)),
    ("locked.ods", lambda: make_odf("spreadsheet", "", encrypted=True)),
    ("locked.odp", lambda: make_odf("presentation", "", encrypted=True)),
    ("locked.pdf", lambda: make_encrypted_pdf("secret plans")),
])
def test_a_password_protected_file_of_any_format_says_encrypted(name, make):
    with pytest.raises(ExtractError, match="encrypted"):
        extract(make(), name, LIMITS)


# --- odd parts -------------------------------------------------------------------------------------------------
def misaligned_merge() -> bytes:
    """A table whose second row continues a vertical merge at a grid column where the row above has no cell of its
    own (it spans two): python-docx's ``row.cells`` fails on it ("no `tc` element at grid_offset=1")."""
    import docx

    document = docx.Document()
    document.add_paragraph("Heron count by site")
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate((("north marsh", "", "12"), ("south", "spit", "7"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(0, 0).merge(table.cell(0, 1))
    table.rows[1]._tr.tc_lst[1].vMerge = "continue"
    with pytest.raises(ValueError, match="no `tc` element at grid_offset=1"):
        [cell.text for row in table.rows for cell in row.cells]
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_with_misaligned_merged_cells_yields_its_text():
    got = extract(misaligned_merge(), "merged.docx", LIMITS)
    assert got.pages == ((1, "Heron count by site\n\nnorth marsh | 12\n\nsouth | 7"),) and got.notes == ()


def rewritten(data: bytes, member: str, old: bytes, new: bytes) -> bytes:
    """The ZIP container with one replacement made in one member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == member:
                assert old in body, (member, old)
                body = body.replace(old, new, 1)
            dst.writestr(info, body)
    return out.getvalue()


def test_pptx_odd_table_is_left_out_with_a_note():
    # a table frame without its table: python-pptx fails on it; the slide's other shapes are still read
    odd = rewritten(make_pptx(PPTX), "ppt/slides/slide1.xml", b"<a:tbl>", b"<a:notbl>")
    odd = rewritten(odd, "ppt/slides/slide1.xml", b"</a:tbl>", b"</a:notbl>")
    got = extract(odd, "deck.pptx", LIMITS)
    assert got.pages[0][1].startswith("Quarterly review") and "pelican" not in got.pages[0][1]
    assert got.notes == ("slide 1: shape 'Table 3' left out: it cannot be read (AttributeError)",)


def test_xlsx_broken_sheet_is_left_out_with_a_note():
    book = rewritten(make_xlsx(XLSX), "xl/worksheets/sheet1.xml", b"<v>400</v>", b"<v>four hundred</v>")
    got = extract(book, "stock.xlsx", LIMITS)
    assert [n for n, _ in got.pages] == [2] and "Part: flux capacitor" in got.pages[0][1]
    assert got.notes == ("sheet 1 ('Budget') left out: it cannot be read (ValueError)",)
