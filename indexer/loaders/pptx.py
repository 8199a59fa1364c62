"""PPTX -> one page per slide (python-pptx): the text of every shape (groups and tables included) in reading
order, then the slide's speaker notes."""

from __future__ import annotations

import io

from .base import Extracted, ExtractError, Limits, paged
from .record import Format, LoadInput
from .zipsafe import check_zip


def _shape_texts(shapes) -> list[str]:
    out: list[str] = []
    for shape in shapes:
        if getattr(shape, "shape_type", None) is not None and hasattr(shape, "shapes"):  # a group
            out += _shape_texts(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            out += [" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows]
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            out.append(shape.text_frame.text)
    return [t for t in out if t.strip()]


def load_pptx(data: bytes, limits: Limits) -> Extracted:
    from pptx import Presentation

    check_zip(data, limits, "PPTX")
    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except Exception as exc:  # python-pptx / lxml raise many types for damaged parts
        raise ExtractError(f"corrupted PPTX: {type(exc).__name__}: {str(exc)[:160]}") from None
    limits.check_pages(len(slides), "slides")
    pages: list[tuple[int, str]] = []
    for number, slide in enumerate(slides, 1):
        try:
            blocks = _shape_texts(slide.shapes)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    blocks.append("Speaker notes: " + notes.text)
        except Exception as exc:
            raise ExtractError(f"corrupted PPTX: slide {number} cannot be read ({type(exc).__name__})") from None
        pages.append((number, "\n\n".join(blocks)))
    return paged("pptx", pages, len(slides), "slides")


def _load(got: LoadInput) -> Extracted:
    return load_pptx(got.data, got.limits)


FORMAT = Format("pptx", "PowerPoint", (".pptx",), _load, page="slide",
                mime="application/vnd.openxmlformats-officedocument.presentationml.presentation",
                description="a PowerPoint deck (PPTX)", zip_entry="ppt/presentation.xml")
