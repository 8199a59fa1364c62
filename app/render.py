"""Streamlit building blocks shared by the pages: the service (or a clear error page), result cards, the
"why these results" panel, progress bars and ingest report tables."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from indexer import Calibration, DocumentInfo, Hit, IngestReport, StoreLockedError, relevance_label

from . import charts
from .service import Service, get_service, opening
from .snippets import (
    CSS,
    card_header_html,
    context_html,
    human_bytes,
    kv_table_html,
    local_time,
    md_escape,
    note_html,
    passages_html,
    where_label,
)

log = logging.getLogger(__name__)
STATUS_LABEL = {"ok": "ok", "duplicate": "skipped (duplicate)", "skipped": "skipped", "failed": "failed"}
# translucent tints under the theme's own text colour: readable on the light and the dark theme
STATUS_STYLE = {"ok": "background-color:rgba(33,195,84,0.22)", "failed": "background-color:rgba(255,75,75,0.22)",
                "skipped": "background-color:rgba(128,128,128,0.18)"}
MAX_INLINE_BYTES = 64 * 1024 * 1024  # PDFs up to this size get an "open at page" link


def inject_css() -> None:
    st.html(CSS)


def key_values(rows: dict) -> None:
    st.html(kv_table_html(rows))


def service_or_stop() -> Service:
    """The shared service; on failure an explanation (never a traceback) and the page stops."""
    try:
        with opening():
            return get_service()
    except StoreLockedError as exc:
        st.error(f"The index is in use by another process.\n\n{exc}")
    except FileNotFoundError as exc:
        st.error(f"The model could not be loaded: {exc}\n\nBuild it with `.venv/bin/python -m embedder prepare`, "
                 "or point MOESEARCH_MODEL at an exported model folder.")
    except ValueError as exc:
        st.error(f"The configuration is not valid: {exc}")
    except Exception as exc:  # the store or the model failed to open: say so, keep the details in the log
        log.exception("cannot start the search service")
        st.error(f"The search service could not start: {type(exc).__name__}: {exc}")
    if st.button("Try again"):
        st.rerun()
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def report_summary(report: dict) -> str:
    parts = [f"{report['ok']} ingested"]
    if report.get("duplicates"):
        parts.append(f"{report['duplicates']} skipped as duplicates")
    if report.get("skipped"):
        parts.append(f"{report['skipped']} skipped")
    if report.get("failed"):
        parts.append(f"{report['failed']} failed")
    return f"{', '.join(parts)} ({report.get('chunks', 0)} chunks, {report.get('seconds', 0):.1f} s)"


def report_table(report: IngestReport | dict, title: str | None = None) -> None:
    """One row per file: status, reason, pages, chunks, seconds."""
    data = report.to_dict() if isinstance(report, IngestReport) else report
    if title:
        st.markdown(f"**{md_escape(title)}**")
    if data.get("store_error"):
        st.error(f"The store failed: {data['store_error']}. Files already ingested are kept; fix the store and "
                 "ingest the rest again.")
    if not data["files"]:
        st.info("No files were found to ingest.")
        return
    (st.success if not data["failed"] and not data.get("store_error") else st.warning)(report_summary(data))
    rows = [{"file": f["name"], "status": STATUS_LABEL.get(f["status"], f["status"]), "reason": f["reason"],
             "pages": f["pages"], "chunks": f["chunks"], "seconds": round(f["seconds"], 2)} for f in data["files"]]
    frame = pd.DataFrame(rows)
    styled = frame.style.map(lambda v: STATUS_STYLE.get(v.split(" ")[0], ""), subset=["status"])
    st.dataframe(styled, hide_index=True, width="stretch",
                 column_config={"reason": st.column_config.TextColumn(width="large"),
                                "seconds": st.column_config.NumberColumn(format="%.2f")})


def documents_frame(docs: list[DocumentInfo]) -> pd.DataFrame:
    return pd.DataFrame([{"source": d.source, "type": d.doc_type, "pages": d.pages, "chunks": d.chunks,
                          "size": human_bytes(d.size_bytes), "ingested at": local_time(d.ingested_at),
                          "original kept": d.kept_copy, "id": d.doc_id[:12]} for d in docs],
                        columns=["source", "type", "pages", "chunks", "size", "ingested at", "original kept", "id"])


# --- result cards ------------------------------------------------------------------------------------------------
def _inline_url(data: bytes, mime: str, coordinates: str) -> str | None:
    """A URL the browser opens in place (PDF viewer), served by Streamlit's media endpoint for this session.
    None when no server runtime exists (AppTest) or the internal API changed."""
    try:
        from streamlit import runtime

        if not runtime.exists():
            return None
        url = runtime.get_instance().media_file_mgr.add(data, mime, coordinates)
        base = (st.get_option("server.baseUrlPath") or "").strip("/")
        return f"/{base}{url}" if base else url
    except Exception as exc:  # pragma: no cover - depends on Streamlit internals
        log.warning("cannot serve the original inline: %s", exc)
        return None


def _available(doc: DocumentInfo | None) -> bool:
    return doc is not None and (doc.kept_copy or (bool(doc.path) and Path(doc.path).is_file()))


@st.cache_resource(max_entries=4, ttl=600, show_spinner=False)
def _original_bytes(doc_id: str, _service: Service) -> bytes | None:
    """A PDF's bytes for the "open at page" link, read once for all reruns and sessions (a doc_id names its
    content, so they never go stale); None if the original is not available."""
    try:
        return _service.pipeline.document_file(doc_id).read()
    except Exception as exc:
        log.warning("original of %s unavailable: %s", doc_id[:12], exc)
        return None


OCR_BADGE = ('<span class="ms-badge ms-ocr" title="This text was read from an image by OCR and may contain '
             'misread words">OCR</span>')


def ocr_badge(header: str, ocr: bool) -> str:
    """A card header with an "OCR" badge after its other badges when the hit's text was read by OCR."""
    at = header.rfind('<span class="ms-rel')
    return header[:at] + OCR_BADGE + header[at:] if ocr and at >= 0 else header


def result_card(service: Service, rank: int, passages: Sequence[Hit], matched: int, query: str,
                doc: DocumentInfo | None, cal: Calibration | None, best: float | None) -> None:
    """One document: its best passages (best first; the header names the first's place and relevance, ``best``
    being the search's best dense cosine), how many more of its passages matched, and the document's actions (the
    surrounding text is the best passage's)."""
    hit = passages[0]
    pages = doc.pages if doc else None
    with st.container(border=True, key=f"hit-{rank}"):
        rel = relevance_label(hit.similarity, cal, hit.score, best)
        st.html(ocr_badge(card_header_html(rank, hit.source, hit.page, pages, hit.doc_type, rel),
                          any(h.ocr for h in passages)))
        st.html(passages_html([(where_label(h.page, pages, h.doc_type), h.text, h.matched_terms) for h in passages],
                              more=matched - len(passages)))
        with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
            show = st.toggle("Show surrounding text", key=f"ctx-{hit.id}")
            similar = st.toggle("Similar documents", key=f"sim-{hit.id}",
                                help="Other documents nearest this one as a whole (the model's document-similarity "
                                     "task expert where it has one)")
            if _available(doc):
                mime = "application/pdf" if hit.doc_type == "pdf" else "application/octet-stream"
                st.download_button(f"Download {hit.doc_type.upper() or 'file'}", key=f"dl-{rank}-{hit.id}",
                                   data=lambda doc_id=hit.doc_id: service.pipeline.document_file(doc_id).read(),
                                   file_name=hit.source, mime=mime, on_click="ignore", icon=":material/download:",
                                   type="tertiary")
                if hit.doc_type == "pdf" and doc.size_bytes <= MAX_INLINE_BYTES:
                    data = _original_bytes(hit.doc_id, service)
                    url = _inline_url(data, "application/pdf", f"open-{hit.doc_id}") if data else None
                    if url:
                        st.link_button(f"Open at page {hit.page}", f"{url}#page={hit.page}", type="tertiary",
                                       icon=":material/open_in_new:")
            else:
                st.caption("original not kept")
        if similar:
            similar_list(service, hit)
        if show:
            try:
                near = service.pipeline.neighbours(hit, query=query)
            except Exception as exc:
                st.caption(f"The surrounding text is not available: {exc}")
            else:
                st.html(context_html(hit.chunk_index, hit.page, hit.char_start, hit.char_end,
                                     [(h.chunk_index, h.page, h.char_start, h.char_end, h.text, h.matched_terms)
                                      for h in near]))


def similar_list(service: Service, hit: Hit, k: int = 5) -> None:
    """The documents nearest the hit's document, as a small table (file, type, pages, similarity)."""
    try:
        found = service.pipeline.similar(hit.doc_id, k=k)
    except Exception as exc:  # e.g. an index built before similarity vectors: say what to do
        st.caption(f"Similar documents are not available: {exc}")
        return
    if not found:
        st.caption("No other documents in the index.")
        return
    st.dataframe(pd.DataFrame({"document": [s.doc.source for s in found],
                               "type": [s.doc.doc_type.upper() for s in found],
                               "pages": [s.doc.pages for s in found],
                               "similarity": [round(s.score, 3) for s in found]}),
                 hide_index=True, width="stretch", key=f"simtab-{hit.id}")


def task_expert_note(info) -> str:
    """What the "why" panel says for a task-expert (MoTE) model: which expert embedded the query and the hits."""
    layers = ", ".join(str(i) for i in info.task_layers) or "none"
    return (f"This model has one expert per task ({', '.join(info.tasks)}) in its MoE layers ({layers}), chosen by "
            "the task, not by a router. Your query was embedded by the **search_query** expert, the passages by the "
            "**search_document** expert; \"Similar documents\" uses the **symmetric** expert"
            + ("" if "symmetric" in info.tasks else " (this model has none: it uses the document embedding)") + ".")


def routing_panel(service: Service, query: str, top: Hit) -> None:
    """Which experts the router chose, per MoE layer, for the query and for the top hit."""
    st.markdown("#### Why these results")
    info = service.pipeline.model_info()
    if info.moe_mode == "task":
        st.markdown(task_expert_note(info))
        return
    if not info.has_router:
        st.html(note_html("This model has no Mixture-of-Experts layers, so there are no router choices to show."))
        return
    try:
        q = service.pipeline.routing(query, query=True)
        d = service.pipeline.routing(top.text, query=False)
    except Exception as exc:
        log.exception("routing failed")
        st.html(note_html(f"Router choices are not available: {exc}"))
        return
    st.html(note_html(f"Each MoE layer sends every word piece to {q.experts.shape[-1]} of its {q.num_experts} "
                      "experts. Darker cells got more of the routing weight."))
    st.altair_chart(charts.heatmap(q, "Your query"), width="stretch")
    st.altair_chart(charts.heatmap(d, f"Top result: {top.source}"), width="stretch")
    shared = charts.agreement(q, d)
    per_layer = ", ".join(f"layer {layer} {s:.0%}" for layer, s in zip(q.layers, shared, strict=True))
    st.html(note_html(f"The top result's text went to the same experts as your query for {shared.mean():.0%} of the "
                      f"routing weight ({per_layer})."))
    with st.expander("Per word piece"):
        st.dataframe(charts.token_table(q), hide_index=True, width="stretch")
