"""A scanned PDF in a real browser: the Ingest page lists the accepted types, an admin uploads a PDF whose pages
are only images of text, and search finds that text on the right page (read by Tesseract in the app's ingest job).
Also the card's "OCR" badge, as a unit."""

from __future__ import annotations

import shutil

import pytest
from app_helpers import PASSWORD
from app_server import CHROMIUM, CHROMIUM_ARGS, browser_env, new_page, sign_in, streamlit_app, wait_idle

from app.render import ocr_badge
from app.snippets import card_header_html
from indexer import relevance_label

LINES = [["A page of the ledger"], ["The lighthouse keeper logs every storm", "in the harbour book."]]


def scanned_pdf() -> bytes:
    """Two A4 pages, each holding only an image of its lines (no text layer)."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    pdf = FPDF()
    for lines in LINES:
        image = Image.new("L", (1700, 2200), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((120, 150 + 80 * i), line, fill=0, font=ImageFont.load_default(size=40))
        pdf.add_page()
        pdf.image(image, x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())


def test_ocr_badge_joins_the_other_badges_only_for_ocr_hits():
    head = card_header_html(1, "scan.pdf", 2, 3, "pdf", relevance_label(0.5, None))
    assert ocr_badge(head, False) == head
    marked = ocr_badge(head, True)
    assert marked.count(">OCR</span>") == 1 and marked.index(">OCR<") < marked.index('class="ms-rel')


@pytest.mark.e2e
def test_admin_uploads_a_scanned_pdf_and_finds_its_text(tmp_path, tiny_model_dir, admin_hash):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed (apt-get install tesseract-ocr)")
    from playwright.sync_api import sync_playwright

    scan = tmp_path / "ledger-scan.pdf"
    scan.write_bytes(scanned_pdf())
    env = browser_env(tiny_model_dir, tmp_path / "data", admin_hash)
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)
            sign_in(page, url, PASSWORD)
            page.get_by_text("Accepted: PDF (scanned pages by OCR) (.pdf)").wait_for()
            assert "PowerPoint (.pptx)" in page.get_by_text("Accepted:").inner_text()

            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(scan)])
            page.get_by_role("button", name="Ingest 1 file").click()
            page.get_by_text("Ingest finished: 1 uploaded file").wait_for(timeout=120_000)
            page.get_by_text("1 ingested").wait_for()
            wait_idle(page)

            page.get_by_role("link", name="Search").click()
            box = page.get_by_placeholder("Ask a question or type some words...")
            box.fill("lighthouse keeper storm")
            box.press("Enter")
            wait_idle(page)
            first = page.locator(".ms-head").first
            first.wait_for()
            assert "ledger-scan.pdf" in first.inner_text() and "page 2 of 2" in first.inner_text()
            assert "lighthouse keeper" in page.locator(".ms-snippet").first.inner_text().lower()
        finally:
            browser.close()
