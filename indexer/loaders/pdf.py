"""PDF -> pages: pypdf opens the file (structure, damage, encryption, page count, images); each page's text layer
is PDFium's (pypdfium2), or pypdf's where that keeps the words apart better (``pdf_text.py``: the choice, ligatures,
hyphenation, running headers and footers); pages that are images (no or almost no text layer) are rendered with
PDFium and read by OCR (``ocr.py``).  docs/formats-pdf.md describes the whole."""

from __future__ import annotations

import io
import logging
import math
import threading
import warnings

from . import ocr, pdf_text
from .base import Extracted, ExtractError, Limits, OcrProgress, normalize
from .record import Format, LoadInput, Magic

MIN_TEXT_CHARS = 20  # a page with fewer non-space characters than this and an image is read by OCR
_PDFIUM = threading.Lock()  # PDFium is not thread-safe


class _PdfDamage(logging.Handler):
    """pypdf recovers from damaged data with a logged warning and may silently drop text.  This handler (on the
    ``pypdf`` logger, which stops propagating) collects those warnings for the thread that is reading a PDF and
    passes every other record on to the root logger as usual."""

    SERIOUS = ("decompress", "invalid elementary object", "not defined", "ended unexpectedly", "does not match actual")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        found = getattr(self.local, "found", None)
        if found is None:
            root = logging.getLogger()
            if record.levelno >= root.getEffectiveLevel():
                root.handle(record)
        elif any(s in record.getMessage().lower() for s in self.SERIOUS):
            found.append(record.getMessage()[:160])


_DAMAGE = _PdfDamage()
_PYPDF = logging.getLogger("pypdf")
_PYPDF.setLevel(logging.WARNING)
_PYPDF.addHandler(_DAMAGE)
_PYPDF.propagate = False


def load_pdf(data: bytes, limits: Limits, progress: OcrProgress | None = None) -> Extracted:
    _DAMAGE.local.found = found = []
    try:
        pages, n_pages, notes, scans = _read_text_layer(data, found, limits)
    finally:
        _DAMAGE.local.found = None
    ocr_done: list[int] = []
    if scans:
        reason = ocr.problem(limits.ocr_languages) or _renderer_problem()
        if reason is None:
            texts = dict(pages)
            for number, text in ocr_pages(data, scans, limits, progress):
                if text:
                    texts[number] = text
                    ocr_done.append(number)
            pages = sorted(texts.items())
            if len(ocr_done) < len(scans):
                notes.append(f"OCR found no text on {len(scans) - len(ocr_done)} of the {len(scans)} image pages")
        elif not pages:
            raise ExtractError(f"no text layer: its {n_pages} page(s) are images (a scan) and {reason}")
        else:
            notes.append(f"{len(scans)} of {n_pages} pages are images and were not read: {reason}")
    if not pages and scans:
        raise ExtractError(f"no text layer, and OCR found no text on its {len(scans)} image page(s)")
    if not pages:
        raise ExtractError(f"no text layer: none of its {n_pages} page(s) has text or images" if n_pages
                           else "PDF has no pages")
    if len(pages) < n_pages:
        notes.append(f"{n_pages - len(pages)} of {n_pages} pages have no text")
    if ocr_done:
        notes.append(f"{len(ocr_done)} page(s) read by OCR")
    return Extracted("pdf", tuple(pages), n_pages, tuple(notes), tuple(ocr_done))


def _read_text_layer(data: bytes, damage: list[str], limits: Limits
                     ) -> tuple[list[tuple[int, str]], int, list[str], list[int]]:
    """(pages with a text layer, page count, notes, numbers of image pages to OCR)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    notes: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data), strict=True)
    except Exception as strict_error:  # pypdf raises many types for broken files
        if b"%%EOF" not in data[-2048:]:
            raise ExtractError(f"truncated PDF: the end-of-file marker is missing ({strict_error})") from None
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            len(reader.pages)
        except Exception as exc:
            raise ExtractError(f"corrupted PDF: {str(strict_error or exc)[:120]}") from None
        notes.append(f"repaired damaged PDF structure ({str(strict_error)[:120]})")
    if damage:
        raise ExtractError(f"corrupted PDF: damaged objects ({damage[0][:100]})")
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise ExtractError(f"encrypted PDF with an unsupported cipher: {exc}") from None
        if not ok:
            raise ExtractError("encrypted PDF: it needs a password to open; save an unprotected copy and ingest "
                               "that")
    try:
        n_pages = len(reader.pages)
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError) as exc:
        raise ExtractError(f"corrupted PDF: cannot read its page tree ({exc})") from None
    limits.check_pages(n_pages)
    pages: list[tuple[int, str]] = []
    scans: list[int] = []
    doc, why_not = _open_pdfium(data)
    if doc is None:
        notes.append(f"PDFium cannot open the file ({why_not[:120]}); its text is pypdf's alone")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for number in range(1, n_pages + 1):
                page = reader.pages[number - 1]
                try:
                    text = _page_text(page, doc, number)
                except Exception as exc:
                    raise ExtractError(f"corrupted PDF: page {number} cannot be read ({type(exc).__name__}: "
                                       f"{str(exc)[:120]})") from None
                if damage:
                    raise ExtractError(f"corrupted PDF: page {number} has damaged data ({damage[0][:100]}); its "
                                       "text would be incomplete")
                if len("".join(text.split())) < MIN_TEXT_CHARS and _has_images(page):
                    scans.append(number)
                elif text:
                    pages.append((number, text))
    finally:
        if doc is not None:
            with _PDFIUM:
                doc.close()
    pages, dropped = pdf_text.drop_repeated_lines(pages)
    if dropped:
        shown = ", ".join("page numbers" if line.isdigit() else repr(line[:60]) for line in dropped[:3])
        notes.append(f"running headers/footers left out after their first page: {shown}"
                     + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""))
    return pages, n_pages, notes, scans


def _open_pdfium(data: bytes):
    """(PDFium's document, None), or (None, why) where PDFium cannot open what pypdf opened."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        return None, "pypdfium2 is not installed: pip install 'moesearch[app]'"
    with _PDFIUM:
        try:
            return pdfium.PdfDocument(data), None
        except pdfium.PdfiumError as exc:
            return None, str(exc)


def _pdfium_text(doc, number: int) -> str | None:
    """PDFium's text of page ``number``, in the order of the content stream; None where PDFium cannot read it."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            page = doc[number - 1]
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            page.close()
        except pdfium.PdfiumError:
            return None
    return text


def _page_text(page, doc, number: int) -> str:
    """A page's cleaned text: PDFium's, where it has text and at most 1% run-on or unreadable words
    (``pdf_text.quality`` <= ``GOOD_ENOUGH``: pypdf's could be better by no more than that, so it is not read);
    else the better of PDFium's and pypdf's (``pdf_text.better``).  pypdf decompresses the page's content either
    way, to find damaged data."""
    fast = None if doc is None else _pdfium_text(doc, number)
    if fast is not None:
        fast = pdf_text.clean(fast)
        contents = page.get_contents()
        if contents is not None:
            contents.get_data()
        if pdf_text.quality(fast) <= pdf_text.GOOD_ENOUGH and len("".join(fast.split())) >= MIN_TEXT_CHARS:
            return fast
    slow = pdf_text.clean(page.extract_text() or "")
    if fast is None or pdf_text.better(fast, slow) == "pypdf":
        return slow
    return fast


def _renderer_problem() -> str | None:
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        return "rendering PDF pages for OCR needs pypdfium2, which is not installed: pip install 'moesearch[app]'"
    return None


def _has_images(page) -> bool:
    try:
        return len(page.images) > 0  # lists the page's image XObjects (nested forms too) without decoding them
    except Exception:  # an image pypdf cannot list may still render
        return True


def ocr_pages(data: bytes, numbers: list[int], limits: Limits, progress: OcrProgress | None = None):
    """Yield ``(page number, normalised OCR text)`` for the given pages, rendered at ``ocr.DPI`` (less for a page
    so big that it would pass the megapixel cap)."""
    import pypdfium2 as pdfium

    budget = ocr.OcrBudget(limits, len(numbers))
    cap = limits.max_image_megapixels * 1e6
    with _PDFIUM:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise ExtractError(f"cannot render the PDF's image pages for OCR ({exc})") from None
    try:
        for done, number in enumerate(numbers, 1):
            with _PDFIUM:
                try:
                    page = doc[number - 1]
                    width, height = page.get_size()  # points
                    scale = ocr.DPI / 72
                    pixels = width * height * scale * scale
                    if pixels > cap:
                        scale *= math.sqrt(cap / pixels)
                    image = page.render(scale=scale, grayscale=True).to_pil()
                    page.close()
                except pdfium.PdfiumError as exc:
                    raise ExtractError(f"cannot render page {number} for OCR ({exc})") from None
            yield number, normalize(budget.read(image))
            if progress is not None:
                progress(done, len(numbers))
    finally:
        with _PDFIUM:
            doc.close()


def _load(got: LoadInput) -> Extracted:
    return load_pdf(got.data, got.limits, got.progress)


FORMAT = Format("pdf", "PDF (scanned pages by OCR)", (".pdf",), _load, page="page", mime="application/pdf",
                magic=(Magic(b"%PDF-", "a PDF", after_junk=1024),), text_name="the PDF's text layer")
