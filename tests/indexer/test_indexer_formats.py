"""Office, e-book, table, e-mail and legacy-encoded text files: each made here with the library that writes the
format, ingested through the pipeline (tiny model) and found by keyword search on the right page / slide / sheet
/ chapter / part; renamed files are still recognised; caps (pages, rows, ZIP size and entries) fail one file
with the cap named while the batch goes on."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest
from indexer_testfiles import make_docx, make_png, sentences

from indexer.extract import ExtractError, Limits, extract
from indexer.formats import FORMATS, SUPPORTED_SUFFIXES, accepted_types
from indexer.sniff import sniff

BIG = dict(max_pages=5000, max_rows=50_000, max_unzipped_mb=256, max_zip_entries=10_000, max_xml_mb=128,
           max_image_megapixels=50,
           ocr_seconds=300, ocr_languages="eng")


def limits(**changes) -> Limits:
    return Limits(**{**BIG, **changes})


# --- fixtures made with each format's own library ------------------------------------------------------
def make_pptx(slides: list[tuple[str, str, str]]) -> bytes:
    """(title, body, speaker notes) per slide; the first slide also gets a table."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for number, (title, body, notes) in enumerate(slides, 1):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
        if number == 1:
            table = slide.shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1)).table
            for r, row in enumerate((("unit", "count"), ("pelican", "12"))):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_epub(chapters: list[tuple[str, str]]) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("moesearch-test")
    book.set_title("Field notes")
    book.set_language("en")
    items = []
    for number, (title, text) in enumerate(chapters, 1):
        item = epub.EpubHtml(title=title, file_name=f"chap_{number}.xhtml", lang="en")
        item.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def make_eml(body: str, attachments: list[tuple[str, str, bytes]]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ada Field <ada@example.org>"
    msg["To"] = "team@example.org"
    msg["Subject"] = "Survey results from the estuary"
    msg["Date"] = "Tue, 03 Mar 2026 10:00:00 +0000"
    msg.set_content(body)
    for name, ctype, data in attachments:
        main, sub = ctype.split("/")
        if main == "text":
            msg.add_attachment(data.decode(), subtype=sub, filename=name)
        else:
            msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes()


def zip_bomb(base: bytes, member: str, megabytes: int) -> bytes:
    """``base`` (a ZIP container) with one more entry of ``megabytes`` MB of zeros (deflated to ~1/1000)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(info, "w", force_zip64=True) as f:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                f.write(block)
    return out.getvalue()


PPTX = [("Quarterly review", sentences(4, 1), ""),
        ("Field season", "The kestrel migration started early this year.", ""),
        ("Next steps", sentences(3, 2), "Remember to thank the okapi sanctuary volunteers.")]
XLSX = {"Budget": [["Item", "Cost"], ["tents", 400], ["boats", 1200.0]],
        "Inventory": [["Part", "Location", "Count"], ["flux capacitor", "warehouse nine", 3], ["rope", "shed", 10]]}
EPUB = [("Arrival", sentences(5, 3)), ("The reef", "Parrotfish graze the coral at dawn."), ("Leaving", sentences(4, 4))]
CSV = "species,site,notes\nheron,north marsh,nesting\nwalrus,ice shelf,hauled out near the lighthouse\n"


# --- search with page numbers -----------------------------------------------------------------------------
def test_each_format_is_found_on_its_page(pipeline, tmp_path):
    files = {
        "deck.pptx": make_pptx(PPTX),
        "stock.xlsx": make_xlsx(XLSX),
        "notes.epub": make_epub(EPUB),
        "sightings.csv": CSV.encode(),
        "sightings.tsv": CSV.replace(",", "\t").replace("heron", "egret").encode(),
        "survey.eml": make_eml("Dear team, the tide tables are attached.",
                               [("chart.png", "image/png", make_png()),
                                ("tides.txt", "text/plain", b"Spring tide peaks at the sandbar on Friday.")]),
        "legacy.txt": "Le château de Fontainebleau, déjà célèbre, reçoit des élèves.".encode("cp1252"),
        "russian.txt": "Северное сияние видно над тундрой каждую зиму.".encode("cp1251"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = pipeline.ingest([tmp_path / name for name in files])
    status = {f.name: f for f in report.files}
    assert all(f.status == "ok" for f in report.files), [(f.name, f.reason) for f in report.files]
    assert status["deck.pptx"].pages == 3 and status["stock.xlsx"].pages == 2 and status["notes.epub"].pages == 3
    assert status["survey.eml"].pages == 3  # the message, the image attachment (not indexed), the text one
    assert any("chart.png" in n and "not indexed" in n for n in status["survey.eml"].notes)

    def top(query: str, source: str):
        hits = [h for h in pipeline.search(query, k=5, mode="keyword") if h.source == source]
        assert hits, f"{query!r} not found in {source}"
        return hits[0]

    assert top("kestrel migration", "deck.pptx").page == 2
    assert top("okapi sanctuary volunteers", "deck.pptx").page == 3  # speaker notes
    assert "pelican" in top("pelican", "deck.pptx").text and top("pelican", "deck.pptx").page == 1  # a table
    hit = top("flux capacitor warehouse", "stock.xlsx")
    assert hit.page == 2 and "Part: flux capacitor" in hit.text and "Location: warehouse nine" in hit.text
    assert "Sheet: Inventory" in hit.text
    assert top("parrotfish coral", "notes.epub").page == 2
    assert "site: ice shelf" in top("walrus lighthouse", "sightings.csv").text
    assert "species: egret" in top("egret", "sightings.tsv").text
    assert top("spring tide sandbar", "survey.eml").page == 3
    assert "Subject: Survey results" in top("tide tables attached", "survey.eml").text
    assert "château" in top("Fontainebleau", "legacy.txt").text
    assert "сияние" in top("сияние тундрой", "russian.txt").text
    assert {d.doc_type for d in pipeline.documents()} == {"pptx", "xlsx", "epub", "csv", "eml", "txt"}


# --- loaders in detail --------------------------------------------------------------------------------------
def test_xlsx_rows_keep_their_header_names_and_values():
    got = extract(make_xlsx({"S": [["when", "amount", None], [None, None, None], ["2024-01-05", 2.0, "x"]]}),
                  "a.xlsx", limits())
    assert got.pages == ((1, "Sheet: S\n\nwhen | amount\nwhen: 2024-01-05; amount: 2; column 3: x"),)


def moved_row(book: bytes, row: int) -> bytes:
    """The workbook with its second row renumbered ``row`` (its dimension still says A1:B2)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                for old in (b'<row r="2"', b'r="A2"', b'r="B2"'):
                    data = data.replace(old, old.replace(b"2", str(row).encode()))
            dst.writestr(info, data)
    return out.getvalue()


def test_xlsx_reads_past_a_wrong_dimension_up_to_excels_last_row():
    book = make_xlsx({"S": [["a", "b"], ["far", "away"]]})
    assert "a: far; b: away" in extract(moved_row(book, 900_000), "gap.xlsx", limits(max_rows=5)).pages[0][1]
    with pytest.raises(ExtractError, match="rows numbered past 1048576"):
        extract(moved_row(book, 2_000_000), "gap.xlsx", limits())


def test_eml_html_body_and_encodings():
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@example.org", "Grüße"
    msg.set_content("<html><body><p>Ein <b>Bericht</b></p><script>x()</script></body></html>", subtype="html",
                    charset="iso-8859-1")
    got = extract(msg.as_bytes(), "m.eml", limits())
    assert got.doc_type == "eml" and "Subject: Grüße" in got.pages[0][1] and "Ein Bericht" in got.pages[0][1]
    assert "x()" not in got.pages[0][1]


def test_renamed_files_are_recognised_or_refused_clearly():
    deck = extract(make_pptx(PPTX), "deck.docx", limits())
    assert deck.doc_type == "pptx" and any("named .docx but the content is a PowerPoint" in n for n in deck.notes)
    book = extract(make_xlsx(XLSX), "export.zip", limits())
    assert book.doc_type == "xlsx" and any("unsupported extension .zip" in n for n in book.notes)
    mail = extract(make_eml("hello there", []), "mail.txt", limits())
    assert mail.doc_type == "eml" and any("an e-mail message" in n for n in mail.notes)
    assert extract(CSV.encode(), "rows.csv", limits()).doc_type == "csv"
    assert sniff(make_epub(EPUB)).kind == "epub"
    odg = io.BytesIO()  # an OpenDocument drawing: no format reads it
    with zipfile.ZipFile(odg, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.graphics")
        z.writestr("content.xml", "<x/>")
    with pytest.raises(ExtractError, match="named .docx but the content is an OpenDocument file"):
        extract(odg.getvalue(), "letter.docx", limits())
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ExtractError, match="unsupported file type: a ZIP archive"):
        extract(plain.getvalue(), "a.zip", limits())


@pytest.mark.parametrize("data,name,cap,reason", [
    (make_pptx(PPTX), "deck.pptx", dict(max_pages=2), r"too many slides: 3 \(the cap is 2, MOESEARCH_MAX_PAGES\)"),
    (make_xlsx(XLSX), "s.xlsx", dict(max_pages=1), "too many sheets: 2"),
    (make_epub(EPUB), "b.epub", dict(max_pages=2), "too many chapters: 3"),
    (make_eml("x", [("a.txt", "text/plain", b"a"), ("b.txt", "text/plain", b"b")]), "m.eml", dict(max_pages=2),
     "too many parts"),
    (make_xlsx(XLSX), "s.xlsx", dict(max_rows=4), "too many rows: more than 4 .*MOESEARCH_MAX_ROWS"),
    (CSV.encode() * 3, "r.csv", dict(max_rows=5), "too many rows"),
    (make_docx([sentences(3, 1)]), "w.docx", dict(max_zip_entries=3), "MOESEARCH_MAX_ZIP_ENTRIES"),
    (zip_bomb(make_docx(["tiny"]), "word/media/zeros.bin", 3), "w.docx", dict(max_unzipped_mb=2),
     r"DOCX unpacks to [34] MB, over the cap of 2 MB \(MOESEARCH_MAX_UNZIPPED_MB\)"),
    (zip_bomb(make_pptx(PPTX), "ppt/media/zeros.bin", 3), "d.pptx", dict(max_unzipped_mb=2), "PPTX unpacks to"),
    (zip_bomb(make_xlsx(XLSX), "xl/media/zeros.bin", 3), "s.xlsx", dict(max_unzipped_mb=2), "XLSX unpacks to"),
    (zip_bomb(make_epub(EPUB), "EPUB/zeros.bin", 3), "b.epub", dict(max_unzipped_mb=2), "EPUB unpacks to"),
])
def test_caps_name_their_setting(data, name, cap, reason):
    with pytest.raises(ExtractError, match=reason):
        extract(data, name, limits(**cap))
    extract(data, name, limits())  # within the default caps the same file reads


def test_markup_cap_counts_what_inflates_whatever_its_name():
    import os

    disguised = zip_bomb(make_pptx(PPTX), "ppt/media/image9.png", 3)  # zeros named .png inflate 1000x
    with pytest.raises(ExtractError, match=r"PPTX holds 3 MB of XML/HTML .*MOESEARCH_MAX_XML_MB"):
        extract(disguised, "d.pptx", limits(max_xml_mb=2))
    out = io.BytesIO()  # a real (incompressible) picture of the same size is media, not markup
    with zipfile.ZipFile(io.BytesIO(make_pptx(PPTX))) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("ppt/media/image9.png", os.urandom(3 << 20))
    assert extract(out.getvalue(), "d.pptx", limits(max_xml_mb=2)).page_count == 3


def test_a_real_zip_bomb_is_refused_before_inflating(pipeline, tmp_path, monkeypatch):
    """300 MB of zeros in a 0.3 MB DOCX (over the default 256 MB cap) fails alone; the good file of the batch
    is indexed and what was stored stays."""
    import time

    keep = tmp_path / "keep.txt"
    keep.write_text(sentences(8, 5, "okapi"))
    assert pipeline.ingest([keep]).files[0].status == "ok"
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(zip_bomb(make_docx(["harmless"]), "word/document2.xml", 300))
    assert bomb.stat().st_size < 2 << 20
    good = tmp_path / "good.csv"
    good.write_text("animal,place\nnarwhal,fjord\n")
    t0 = time.perf_counter()
    report = pipeline.ingest([bomb, good])
    bad, ok = report.files
    assert bad.status == "failed" and "MOESEARCH_MAX_UNZIPPED_MB" in bad.reason and "unpacks to 301 MB" in bad.reason
    assert time.perf_counter() - t0 < 30
    assert ok.status == "ok"
    assert {h.source for h in pipeline.search("narwhal fjord", mode="keyword")} == {"good.csv"}
    assert pipeline.search("okapi", mode="keyword")[0].source == "keep.txt"


def test_rows_cap_fails_one_file_in_a_batch(make_settings, tiny_embedder, tmp_path, monkeypatch):
    from indexer.pipeline import Pipeline

    monkeypatch.setenv("MOESEARCH_MAX_ROWS", "3")  # extract reads the caps from the settings in the environment
    (tmp_path / "long.csv").write_text("a,b\n" + "x,y\n" * 10)
    (tmp_path / "short.csv").write_text("a,b\nwombat,burrow\n")
    with Pipeline(make_settings(max_rows=3), embedder=tiny_embedder) as p:
        long, short = p.ingest([tmp_path / "long.csv", tmp_path / "short.csv"]).files
    assert long.status == "failed" and "MOESEARCH_MAX_ROWS" in long.reason
    assert short.status == "ok"


def test_a_missing_library_is_named(monkeypatch):
    import sys

    deck = make_pptx(PPTX)
    monkeypatch.setitem(sys.modules, "pptx", None)  # as in an install without the `app` extra
    with pytest.raises(ExtractError, match=r"\(PPTX\) needs the Python package 'pptx'.*moesearch\[app\]"):
        extract(deck, "deck.pptx", limits())


def test_accepted_types_come_from_one_table():
    text = accepted_types()
    for _, label, suffixes in FORMATS:
        assert label in text and all(s in text for s in suffixes)
    assert SUPPORTED_SUFFIXES[".pptx"] == "pptx" and SUPPORTED_SUFFIXES[".tsv"] == "csv"
    assert SUPPORTED_SUFFIXES[".jpeg"] == "image"
