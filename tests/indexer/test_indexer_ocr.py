"""OCR: a PDF whose pages are images of known text, PNG / JPEG / multi-page TIFF files, all made here with
Pillow + fpdf2, read with Tesseract; pages keep their numbers; the time budget, the megapixel cap, a missing
engine and missing language data each fail the file with a reason naming what to change or install."""

from __future__ import annotations

import io
import re
import shutil

import pytest
from indexer_testfiles import make_pdf, sentences

from indexer.extract import ExtractError, Limits, extract

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="Tesseract is not installed (apt-get install tesseract-ocr; "
                                            "scripts/test.sh installs it when run as root)")
LIMITS = Limits(max_pages=5000, max_rows=50_000, max_unzipped_mb=256, max_zip_entries=10_000, max_xml_mb=128,
                max_image_megapixels=50, ocr_seconds=300, ocr_languages="eng")
SCAN = [["Scanned page two", "The lighthouse keeper logs every storm."],
        ["Scanned page three", "Barnacles cover the old harbour wall."]]


def text_image(lines: list[str], width: int = 1700, height: int = 2200, size: int = 40):
    """A white 'sheet' (about A4 at 200 dpi) with ``lines`` of black text."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)
    for i, line in enumerate(lines):
        draw.text((120, 150 + i * size * 2), line, fill=0, font=font)
    return image


def image_bytes(image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def make_scanned_pdf(pages: list[list[str] | str]) -> bytes:
    """A page per item: a list of lines becomes an image-only page, a string a page with a text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for page in pages:
        pdf.add_page()
        if isinstance(page, str):
            pdf.multi_cell(0, 5, page)
        else:
            pdf.image(text_image(page), x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def share_read(truth: list[str], got: str) -> float:
    found = set(words(got))
    return sum(w in found for w in truth) / len(truth)


@needs_tesseract
def test_image_pages_of_a_pdf_are_read_and_keep_their_numbers():
    pdf = make_scanned_pdf([sentences(6, 1, "kestrel"), *SCAN, ""])
    seen: list[tuple[int, int]] = []
    got = extract(pdf, "scan.pdf", LIMITS, progress=lambda done, total: seen.append((done, total)))
    assert [n for n, _ in got.pages] == [1, 2, 3] and got.page_count == 4 and got.ocr_pages == (2, 3)
    assert "kestrel" in got.pages[0][1]  # the text layer of page 1 as it was
    for (_, text), lines in zip(got.pages[1:], SCAN, strict=True):
        assert share_read(words(" ".join(lines)), text) >= 0.9, text
    assert seen == [(1, 2), (2, 2)]
    assert any("2 page(s) read by OCR" in n for n in got.notes)


@needs_tesseract
def test_png_jpeg_and_multipage_tiff():
    page = text_image(["Invoice number 4471", "Payable to the Marsh Trust"], 1200, 600)
    for data, name in ((image_bytes(page, "PNG"), "invoice.png"), (image_bytes(page, "JPEG", quality=80), "i.jpg")):
        got = extract(data, name, LIMITS)
        assert got.doc_type == "image" and got.ocr_pages == (1,) and "Marsh Trust" in got.pages[0][1], got
    frames = [text_image(["First frame about otters"], 1200, 400), text_image(["Second frame about voles"], 1200, 400)]
    tiff = io.BytesIO()
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    got = extract(tiff.getvalue(), "fax.tif", LIMITS)
    assert got.page_count == 2 and "voles" in got.pages[1][1] and got.ocr_pages == (1, 2)
    renamed = extract(image_bytes(page, "PNG"), "invoice.pdf", LIMITS)  # recognised by content
    assert renamed.doc_type == "image" and any("named .pdf but the content is a PNG image" in n
                                               for n in renamed.notes)


@needs_tesseract
def test_scanned_pdf_and_image_found_by_search_on_their_page(pipeline, tmp_path):
    (tmp_path / "scan.pdf").write_bytes(make_scanned_pdf([sentences(5, 2), *SCAN]))
    (tmp_path / "note.png").write_bytes(image_bytes(text_image(["Meet at the boathouse at noon"], 1200, 400), "PNG"))
    report = pipeline.ingest([tmp_path / "scan.pdf", tmp_path / "note.png"])
    assert [f.status for f in report.files] == ["ok", "ok"], report.files
    hit = next(h for h in pipeline.search("lighthouse keeper storm", k=3, mode="keyword") if h.source == "scan.pdf")
    assert hit.page == 2 and "lighthouse" in hit.text.lower()
    hit = next(h for h in pipeline.search("barnacles harbour", k=3, mode="keyword") if h.source == "scan.pdf")
    assert hit.page == 3
    hit = next(h for h in pipeline.search("boathouse", k=3, mode="keyword"))
    assert hit.source == "note.png" and hit.page == 1 and hit.doc_type == "image"


@needs_tesseract
def test_ocr_chunks_are_marked_in_the_payload(pipeline, tmp_path):
    (tmp_path / "scan.pdf").write_bytes(make_scanned_pdf([sentences(5, 2, "heron"), *SCAN]))
    assert pipeline.ingest([tmp_path / "scan.pdf"]).files[0].status == "ok"
    assert next(h for h in pipeline.search("lighthouse keeper", mode="keyword")).ocr is True
    assert next(h for h in pipeline.search("heron", mode="keyword")).ocr is False
    pipeline.reindex(force=True)  # rebuilt from the stored chunks: the marks stay
    assert next(h for h in pipeline.search("lighthouse keeper", mode="keyword")).ocr is True
    assert next(h for h in pipeline.search("heron", mode="keyword")).ocr is False


@needs_tesseract
def test_ocr_caps_name_their_setting():
    scan = make_scanned_pdf(SCAN)
    with pytest.raises(ExtractError, match=r"time budget of 0.01 s .*MOESEARCH_OCR_SECONDS.* after 0 of 2 page"):
        extract(scan, "slow.pdf", Limits(**{**LIMITS.__dict__, "ocr_seconds": 0.01}))
    small = Limits(**{**LIMITS.__dict__, "max_image_megapixels": 0.5})
    with pytest.raises(ExtractError, match=r"1200x600 pixels .*MOESEARCH_MAX_IMAGE_MEGAPIXELS"):
        extract(image_bytes(text_image(["big"], 1200, 600), "PNG"), "big.png", small)
    got = extract(scan, "scan.pdf", small)  # PDF pages are rendered smaller instead
    assert got.ocr_pages == (1, 2)
    with pytest.raises(ExtractError, match="apt-get install tesseract-ocr-xyz"):
        extract(scan, "scan.pdf", Limits(**{**LIMITS.__dict__, "ocr_languages": "eng+xyz"}))


def test_without_tesseract_images_fail_with_what_to_install_and_text_pdfs_are_unaffected(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on the PATH
    install = "Tesseract is not installed: apt-get install tesseract-ocr"
    with pytest.raises(ExtractError, match=f"a PNG image needs OCR: OCR is needed but {install}"):
        extract(image_bytes(text_image(["x"], 200, 100), "PNG"), "a.png", LIMITS)
    scan = r"its 2 page\(s\) are images \(a scan\) and OCR is needed but "
    with pytest.raises(ExtractError, match=scan + install):
        extract(make_scanned_pdf(SCAN), "scan.pdf", LIMITS)
    mixed = extract(make_scanned_pdf([sentences(4, 3), *SCAN]), "mixed.pdf", LIMITS)
    assert [n for n, _ in mixed.pages] == [1] and mixed.ocr_pages == ()
    assert any("2 of 3 pages are images and were not read" in n and "apt-get install" in n for n in mixed.notes)
    plain = extract(make_pdf([sentences(4, 4), sentences(4, 5)]), "plain.pdf", LIMITS)
    assert plain.page_count == 2 and not plain.notes
