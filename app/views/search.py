"""Search page (everyone): one search box, one result card per document (or per passage), relevance labels, "no
good match" under the model's calibrated threshold, filters (files, types, ingest dates), "why these results"."""

from __future__ import annotations

import time

import streamlit as st

from app.auth import is_admin, is_local
from app.render import inject_css, report_table, result_card, routing_panel, service_or_stop
from app.sample import EXAMPLES, sample_files
from app.service import MODES, Busy, NotEmpty
from app.snippets import md_escape
from indexer import SearchFilters, best_similarity, calibration_for, good_match, group_by_document

PASSAGES = 3  # best passages a document card shows
FETCH = 4  # passages fetched per result asked for, so that k documents remain once grouped

inject_css()
service = service_or_stop()
stats = service.pipeline.stats()

st.markdown("## :material/manage_search: moesearch")
st.caption(f"Search {stats.documents} documents ({stats.chunks} passages) · model `{stats.model_id}`")

if stats.reindex_needed or stats.stale:
    built = stats.serving_model or stats.model_id
    wanted = stats.current_model or stats.configured_model_id
    st.warning(f"The index was built with `{built}`, but the app is configured for `{wanted}`; searches use the "
               "model that built the index until an admin re-indexes (Status page).")

if stats.documents == 0:
    job = service.busy
    st.info("**The index is empty.** Admins add documents on the **Ingest** page (upload files or give a folder "
            "on the server). While the app is stopped, `python -m indexer ingest PATH` does the same from a shell.")
    if job is not None:
        st.info(f"Running now: {md_escape(job.describe())}. Results appear here when it finishes.")
    st.markdown(f"Or try the bundled sample corpus: {len(sample_files())} short public-domain texts (Lincoln, "
                "Darwin, Thoreau, Melville, the Declaration of Independence and a PDF of the Bill of Rights).")
    # Only the bundled files, only into an empty index (the service refuses otherwise): offered without sign-in to
    # a browser on this machine (a fresh install), elsewhere to admins.
    if not (is_local() or is_admin()):
        st.caption("An admin can load it (sign in on the Ingest page).")
    elif st.button("Load the sample corpus", type="primary", icon=":material/library_add:", disabled=job is not None):
        try:  # a background job: leaving the page does not stop it
            job = service.start_sample()
        except Busy as exc:
            st.warning(f"Another ingest is running: {md_escape(str(exc))}.")
        except NotEmpty:
            st.rerun()  # someone else loaded documents meanwhile
        else:
            bar = st.progress(0.0, text="Loading the sample corpus...")
            while not job.wait(0.25):
                bar.progress(job.fraction, text=job.message)
            if job.error is None and job.result.ok:
                st.rerun()
            if job.error:
                st.error(f"The sample corpus could not be ingested: {job.error}")
            else:
                report_table(job.result)
    st.page_link("views/ingest.py", label="Go to the Ingest page", icon=":material/upload_file:")
    st.stop()

query = st.text_input("Search", key="q", bind="query-params", placeholder="Ask a question or type some words...",
                      label_visibility="collapsed", icon=":material/search:")
facets = service.pipeline.facets()
sources, types = list(facets.sources), list(facets.doc_types)
# The control's URL value is its label ("Keyword"); a link written by hand says ?mode=keyword: accept both.
url_mode = str(st.query_params.get("mode", "")).lower()
if url_mode in MODES and st.query_params.get("mode") != url_mode.capitalize():
    st.session_state["mode"] = url_mode
with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
    mode = st.segmented_control("Mode", MODES, default="hybrid", key="mode", required=True, bind="query-params",
                                format_func=str.capitalize,
                                help="Hybrid: meaning and exact words combined. Dense: meaning (the MoE "
                                     "embedder). Keyword: exact words (BM25).")
    k = st.selectbox("Results", (5, 10, 20, 50), index=1, key="k", width=110)
    with st.popover("Filters", icon=":material/filter_list:"):
        chosen_sources = st.multiselect("Sources", sources, key="sources", placeholder="All files")
        chosen_types = st.multiselect("Types", types, key="types", format_func=str.upper, placeholder="All types")
        dates = st.date_input("Ingested between", value=(), key="dates", format="YYYY-MM-DD",
                              help="Only files ingested on or after the first day and on or before the last")
    per_passage = st.toggle("One card per passage", key="per_passage",
                            help="Off: one card per file with its best passages. On: every matching passage.")
    active = len(chosen_sources) + len(chosen_types) + bool(dates)
    if active:
        st.caption(f"{active} filter{'s' if active > 1 else ''} on")

if not query.strip():
    st.info("Type what you are looking for and press Enter: a question, a phrase or a few words.")
    sample_names = {p.name for p in sample_files()}
    if sample_names & set(sources):

        def use_example() -> None:
            st.session_state.q = st.session_state.example or ""
            st.session_state.example = None

        st.pills("Try", EXAMPLES, key="example", on_change=use_example)
    st.stop()

try:
    filters = SearchFilters(tuple(chosen_sources), tuple(chosen_types), *(tuple(dates) + (None, None))[:2])
    started = time.perf_counter()
    hits = service.pipeline.search(query, k=k if per_passage else min(k * FETCH, 200), filters=filters,
                                   mode=mode or "hybrid")
    seconds = time.perf_counter() - started
except Exception as exc:  # a bad query, or an index that needs a reindex: explain, never a traceback
    st.error(f"The search failed: {exc}")
    st.stop()

if not hits:
    tips = []
    if active:
        tips.append("remove the filters")
    if mode == "keyword":
        tips.append("switch to Hybrid or Dense (keyword mode needs the exact words, and ignores words like "
                    "'the' or 'of')")
    tips.append("use other or fewer words")
    st.warning(f"No results for “{md_escape(query.strip())}”. Try to " + ", or ".join(tips) + ".")
    st.stop()

cal = calibration_for(stats.model_id, service.settings.min_similarity)
best = best_similarity(h.similarity for h in hits)  # None: a keyword search
if not good_match([h.similarity for h in hits], cal) and st.session_state.get("anyway") != (query, mode):
    st.warning(f"No good match for “{md_escape(query.strip())}”: the closest passage is no nearer to it than "
               f"nonsense gets (similarity {best:.2f}, below this model's {cal.no_match:.2f}). Try other words, or "
               "Keyword mode to find exact words.")

    def show_anyway() -> None:
        st.session_state.anyway = (query, mode)

    st.button("Show the closest results anyway", on_click=show_anyway, icon=":material/visibility:")
    st.stop()

if per_passage:
    cards = [((hit,), 1) for hit in hits]
    st.caption(f"{len(hits)} passages · {mode} · {seconds * 1000:.0f} ms")
else:
    groups = group_by_document(hits, passages=PASSAGES, limit=k)
    cards = [(g.hits, g.matched) for g in groups]
    st.caption(f"{len(groups)} files · {sum(g.matched for g in groups)} passages · {mode} · {seconds * 1000:.0f} ms")
by_id = service.pipeline.documents_by_id(h.doc_id for h in hits)
left, right = st.columns([2.2, 1], gap="large")
with left:
    for rank, (passages, matched) in enumerate(cards, 1):
        result_card(service, rank, passages, matched, query, by_id.get(passages[0].doc_id), cal, best)
with right:
    routing_panel(service, query, hits[0])
