"""Images -> text with Tesseract (Debian's ``tesseract-ocr``; its models are the package's ``tessdata`` files,
nothing is downloaded), under a per-file time budget.

Chosen over rapidocr-onnxruntime on a rendered A4 page of English text on this 2-core machine: Tesseract 5.3 read
every word in 1.9 s at 300 dpi, RapidOCR's bundled PP-OCRv4 (Chinese + English) model took 13 s and ran most
English words together (19% of the words right).  Tesseract runs as a child process with one OpenMP thread
(with the default, two busy cores made it 5x slower) at lower priority, so it never blocks the serving process.
``tesseract-ocr`` ships English (``eng``) and script detection (``osd``); more languages are Debian packages
(``tesseract-ocr-deu``, ...) selected with ``MOESEARCH_OCR_LANGUAGES=eng+deu``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time

from .base import ExtractError, Limits

DPI = 300  # PDF pages are rendered at this resolution for OCR
INSTALL = "apt-get install tesseract-ocr (Debian/Ubuntu; scripts/run.sh installs it when run as root)"
_known: dict[str, frozenset[str]] = {}  # tesseract path -> its languages (only successful look-ups are kept)
_lock = threading.Lock()


def _tesseract() -> str | None:
    return shutil.which("tesseract")


def languages() -> frozenset[str]:
    """The languages the installed Tesseract has data for; ExtractError naming what to install without it."""
    exe = _tesseract()
    if exe is None:
        raise ExtractError(f"OCR is needed but Tesseract is not installed: {INSTALL}")
    with _lock:
        if exe not in _known:
            try:
                out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=True)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ExtractError(f"OCR is needed but Tesseract does not run ({exc}): {INSTALL}") from None
            _known[exe] = frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())
        return _known[exe]


def problem(langs: str) -> str | None:
    """None when OCR can run for ``langs`` ("eng+deu"), else the reason with what to install."""
    try:
        have = languages()
    except ExtractError as exc:
        return str(exc)
    missing = [lang for lang in langs.split("+") if lang not in have]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        return (f"OCR language data missing for {'+'.join(missing)} (MOESEARCH_OCR_LANGUAGES={langs}): "
                f"apt-get install {packages}")
    return None


def check_pixels(width: int, height: int, limits: Limits, what: str) -> None:
    megapixels = width * height / 1e6
    if megapixels > limits.max_image_megapixels:
        raise ExtractError(f"{what} is {width}x{height} pixels ({megapixels:.0f} MP), over the cap of "
                           f"{limits.max_image_megapixels:g} MP (MOESEARCH_MAX_IMAGE_MEGAPIXELS)")


class OcrBudget:
    """Reads images for one file; the whole file's OCR must finish within ``limits.ocr_seconds``."""

    def __init__(self, limits: Limits, total: int):
        reason = problem(limits.ocr_languages)
        if reason:
            raise ExtractError(reason)
        self.limits = limits
        self.total = total  # pages to OCR, for messages
        self.done = 0
        self.deadline = time.monotonic() + limits.ocr_seconds
        self.cmd = [_tesseract(), "stdin", "stdout", "-l", limits.ocr_languages, "--psm", "3"]
        if shutil.which("nice"):
            self.cmd = ["nice", "-n", "10", *self.cmd]
        self.env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def _over(self) -> ExtractError:
        return ExtractError(f"OCR ran past its time budget of {self.limits.ocr_seconds:g} s for this file "
                            f"(MOESEARCH_OCR_SECONDS) after {self.done} of {self.total} page(s)")

    def read(self, image) -> str:
        """Text of a PIL image (any mode; sent to Tesseract as PNG)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._over()
        if image.mode not in ("1", "L", "RGB"):
            image = image.convert("RGB")
        png = io.BytesIO()
        image.save(png, "PNG", compress_level=1)
        try:
            out = subprocess.run(self.cmd, input=png.getvalue(), capture_output=True, timeout=left, env=self.env)
        except subprocess.TimeoutExpired:
            raise self._over() from None
        except OSError as exc:
            raise ExtractError(f"OCR failed to start Tesseract ({exc}): {INSTALL}") from None
        if out.returncode != 0:
            detail = out.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ExtractError(f"OCR failed: Tesseract exited with {out.returncode} "
                               f"({(detail[-1] if detail else '')[:160]})")
        self.done += 1
        return out.stdout.decode("utf-8", "replace")
