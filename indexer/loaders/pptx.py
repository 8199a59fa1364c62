"""PPTX -> one page per slide (python-pptx): the text of every shape (groups, tables and charts' titles,
categories and series names included) in reading order, then the slide's speaker notes.  A shape (an odd table) or
a slide that cannot be read is left out with a note."""

from __future__ import annotations

import io

from .base import Extracted, ExtractError, Limits, paged
from .record import Format, LoadInput
from .zipsafe import check_zip


def _shape_texts(shapes, number: int, notes: list[str]) -> list[str]:
    """The text of each shape; one that cannot be read (an odd table) is left out with a note."""
    from pptx.shapes.group import GroupShape

    out: list[str] = []
    for shape in shapes:
        try:
            if isinstance(shape, GroupShape):
                out += _shape_texts(shape.shapes, number, notes)
            elif getattr(shape, "has_chart", False) and shape.has_chart:
                out.append(_chart_text(shape.chart))
            elif getattr(shape, "has_table", False) and shape.has_table:
                out += [" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows]
            elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                out.append(shape.text_frame.text)
        except Exception as exc:  # python-pptx / lxml raise many types for odd shapes
            notes.append(f"slide {number}: shape {getattr(shape, 'name', '?')!r} left out: it cannot be read "
                         f"({type(exc).__name__})")
    return [t for t in out if t.strip()]


def _chart_text(chart) -> str:
    """A chart's words: its title, then per plot its categories and series names (values are left out)."""
    out = [chart.chart_title.text_frame.text] if chart.has_title and chart.chart_title.has_text_frame else []
    for plot in chart.plots:
        categories = [str(c) for c in plot.categories if str(c).strip()]
        if categories:
            out.append(", ".join(categories))
        out += [series.name for series in plot.series if series.name and series.name.strip()]
    return "\n".join(out)


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
    skipped: list[str] = []
    for number, slide in enumerate(slides, 1):
        try:
            blocks = _shape_texts(slide.shapes, number, skipped)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    blocks.append("Speaker notes: " + notes.text)
        except Exception as exc:  # one broken slide: the others are still read
            skipped.append(f"slide {number} left out: it cannot be read ({type(exc).__name__})")
            continue
        pages.append((number, "\n\n".join(blocks)))
    return paged("pptx", pages, len(slides), "slides", skipped)


def _load(got: LoadInput) -> Extracted:
    return load_pptx(got.data, got.limits)


FORMAT = Format("pptx", "PowerPoint", (".pptx",), _load, page="slide",
                mime="application/vnd.openxmlformats-officedocument.presentationml.presentation",
                description="a PowerPoint deck (PPTX)", zip_entry="ppt/presentation.xml")
