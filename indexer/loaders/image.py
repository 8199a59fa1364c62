"""PNG / JPEG / TIFF -> pages by OCR (Pillow decodes, ``ocr.py`` reads): one page per TIFF frame."""

from __future__ import annotations

import io
import warnings

from . import ocr
from .base import Extracted, ExtractError, Limits, OcrProgress, paged
from .record import Format, LoadInput, Magic


def load_image(data: bytes, limits: Limits, description: str, progress: OcrProgress | None = None) -> Extracted:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    reason = ocr.problem(limits.ocr_languages)
    if reason:
        raise ExtractError(f"{description} needs OCR: {reason}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            ocr.check_pixels(*image.size, limits, description)
            n_frames = getattr(image, "n_frames", 1)
            limits.check_pages(n_frames, "frames")
            budget = ocr.OcrBudget(limits, n_frames)
            pages: list[tuple[int, str]] = []
            for number, frame in enumerate(ImageSequence.Iterator(image), 1):
                ocr.check_pixels(*frame.size, limits, f"frame {number} of {description}")
                pages.append((number, budget.read(frame)))
                if progress is not None:
                    progress(number, n_frames)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        if isinstance(exc, ExtractError):
            raise
        raise ExtractError(f"corrupted {description.removeprefix('a ')}: {type(exc).__name__}: "
                           f"{str(exc)[:160]}") from None
    try:
        return paged("image", pages, n_frames, "frames", ["read by OCR"],
                     ocr_pages=tuple(n for n, _ in pages))
    except ExtractError:
        raise ExtractError(f"no text: OCR found no text in {description}") from None


def _load(got: LoadInput) -> Extracted:
    return load_image(got.data, got.limits, got.description, got.progress)


FORMAT = Format(
    "image", "images by OCR", (".png", ".jpg", ".jpeg", ".tif", ".tiff"), _load, page="frame",
    mime="application/octet-stream",  # the name's suffix says which image type (below)
    mime_by_suffix=((".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".tif", "image/tiff"),
                    (".tiff", "image/tiff")),
    magic=(Magic(b"\x89PNG\r\n\x1a\n", "a PNG image"), Magic(b"\xff\xd8\xff", "a JPEG image"),
           Magic(b"II*\x00", "a TIFF image"), Magic(b"MM\x00*", "a TIFF image")),
    text_name="the OCR text")
