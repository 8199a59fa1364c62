"""OCR benchmark: pages/s and word accuracy of ``indexer.extract`` on scanned PDFs made here.

Each page is a text page (fpdf2, ~350 words of 11 pt Helvetica) rendered by PDFium at ``--scan-dpi``, tilted a
little, saved as JPEG and placed as the only content of a PDF page: no text layer, like a scanner's output.
The clock covers the whole extraction of those PDFs (pypdf finds the image pages, PDFium renders them at the OCR
resolution, Tesseract reads them); accuracy is the share of the page's words that OCR found, in order.

    python bench/ocr_pages.py --quick      # 4 pages
    python bench/ocr_pages.py              # 20 pages
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_pdfs import page_text, vocabulary  # noqa: E402

from indexer.extract import Limits, extract  # noqa: E402
from indexer.loaders import ocr  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402


def scanned_pdf(text: str, dpi: int, seed: int) -> bytes:
    import pypdfium2 as pdfium
    from fpdf import FPDF
    from PIL import Image

    page = FPDF()
    page.set_font("helvetica", size=11)
    page.add_page()
    page.multi_cell(0, 5, text)
    doc = pdfium.PdfDocument(bytes(page.output()))
    image = doc[0].render(scale=dpi / 72, grayscale=True).to_pil()
    doc.close()
    angle = float(np.random.default_rng(seed).uniform(-0.6, 0.6))
    image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=255, expand=False)
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=75)
    scan = FPDF()
    scan.add_page()
    scan.image(io.BytesIO(jpeg.getvalue()), x=0, y=0, w=scan.w, h=scan.h)
    return bytes(scan.output())


def word_accuracy(truth: str, got: str) -> float:
    a, b = re.findall(r"[a-z]+", truth.lower()), re.findall(r"[a-z]+", got.lower())
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(a))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--scan-dpi", type=int, default=200, help="resolution of the simulated scan")
    parser.add_argument("--quick", action="store_true", help="4 pages")
    args = parser.parse_args()
    n = 4 if args.quick else args.pages
    limits = Limits.from_settings(IndexerSettings.from_env())
    reason = ocr.problem(limits.ocr_languages)
    if reason:
        sys.exit(reason)
    rng = np.random.default_rng(0)
    words = vocabulary()
    texts = [page_text(rng, words) for _ in range(n)]
    t0 = time.perf_counter()
    pdfs = [scanned_pdf(text, args.scan_dpi, i) for i, text in enumerate(texts)]
    print(f"made {n} scanned pages at {args.scan_dpi} dpi in {time.perf_counter() - t0:.1f} s", flush=True)
    accuracy = []
    t0 = time.perf_counter()
    for text, pdf in zip(texts, pdfs, strict=True):
        got = extract(pdf, "scan.pdf", limits)
        assert got.ocr_pages == (1,), got.notes
        accuracy.append(word_accuracy(text, got.pages[0][1]))
    seconds = time.perf_counter() - t0
    print(f"OCR ({limits.ocr_languages}, rendered at {ocr.DPI} dpi, Tesseract one thread): {n} pages in "
          f"{seconds:.1f} s = {n / seconds:.2f} pages/s ({seconds / n:.2f} s/page); words read: mean "
          f"{np.mean(accuracy):.1%}, worst page {min(accuracy):.1%}")


if __name__ == "__main__":
    main()
