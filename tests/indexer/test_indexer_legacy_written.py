"""The legacy and OpenDocument readers on files a real office suite wrote: a DOCX / PPTX / XLSX made here, converted
by LibreOffice (`soffice --headless --convert-to`) to .doc, .ppt, .xls, .odt, .odp and .ods, read back page by page.
Slow (LibreOffice starts once per conversion) and needs LibreOffice: `apt-get install --no-install-recommends
libreoffice-writer-nogui libreoffice-impress-nogui libreoffice-calc-nogui`; skipped without it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from test_indexer_formats import PPTX, XLSX, make_pptx, make_xlsx

from indexer.extract import Limits, extract

SOFFICE = shutil.which("soffice")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed: apt-get install "
                                 "libreoffice-writer-nogui libreoffice-impress-nogui libreoffice-calc-nogui")]
LIMITS = Limits(max_pages=50, max_rows=50, max_unzipped_mb=64, max_zip_entries=1000, max_xml_mb=64,
                max_image_megapixels=1, ocr_seconds=10, ocr_languages="eng")


def make_report() -> bytes:
    """A DOCX: a heading, paragraphs, a page break, a table."""
    import io

    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    document.add_heading("Estuary survey", 1)
    document.add_paragraph("Heron café nests counted in the north marsh.")
    paragraph = document.add_paragraph("Zürich ñandú census")
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    paragraph.add_run("Walrus colony on the second page.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate((("site", "count"), ("marsh", "12"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("office")
    sources = {"report.docx": make_report(), "deck.pptx": make_pptx(PPTX), "stock.xlsx": make_xlsx(XLSX)}
    for name, data in sources.items():
        (folder / name).write_bytes(data)
    out = folder / "out"
    for source, targets in (("report.docx", ("doc", "odt")), ("deck.pptx", ("ppt", "odp")),
                            ("stock.xlsx", ("xls", "ods"))):
        for target in targets:
            subprocess.run([SOFFICE, f"-env:UserInstallation=file://{folder}/profile", "--headless",
                            "--convert-to", target, "--outdir", str(out), str(folder / source)],
                           check=True, capture_output=True)
    return {path.suffix[1:]: path.read_bytes() for path in out.iterdir()}


@pytest.mark.parametrize("kind", ["doc", "odt"])
def test_word_processor_files(written, kind):
    got = extract(written[kind], f"report.{kind}", LIMITS)
    text = "\n".join(t for _, t in got.pages)
    assert got.doc_type == kind and got.notes == ()
    for words in ("Estuary survey", "Heron café nests", "Zürich ñandú census", "Walrus colony", "site | count",
                  "marsh | 12"):
        assert words in text, (words, text)
    if kind == "odt":  # LibreOffice marks the break on the paragraph's style (a .doc would need its PAPX read)
        assert got.pages[1][1].startswith("Walrus colony on the second page.")


@pytest.mark.parametrize("kind", ["ppt", "odp"])
def test_presentation_files(written, kind):
    got = extract(written[kind], f"deck.{kind}", LIMITS)
    assert (got.doc_type, got.page_count, got.notes) == (kind, 3, ())
    pages = dict(got.pages)
    assert pages[1].startswith("Quarterly review") and "pelican" in pages[1]
    assert "kestrel migration" in pages[2]
    assert "Speaker notes: Remember to thank the okapi sanctuary volunteers." in pages[3]


@pytest.mark.parametrize("kind", ["xls", "ods"])
def test_spreadsheet_files(written, kind):
    got = extract(written[kind], f"stock.{kind}", LIMITS)
    assert (got.doc_type, got.page_count, got.notes) == (kind, 2, ())
    assert got.pages[0][1] == "Sheet: Budget\n\nItem | Cost\nItem: tents; Cost: 400\nItem: boats; Cost: 1200"
    assert "Part: flux capacitor; Location: warehouse nine; Count: 3" in got.pages[1][1]
