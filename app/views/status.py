"""Status page: which model serves queries and which one is current (a newly published version shows up here on
the next visit, no restart), re-index with it or roll back (admins), the onnxruntime provider really running, the
store, counts, the last ingest."""

from __future__ import annotations

import streamlit as st

from app.auth import configured_hash, fingerprint
from app.jobpanel import PANEL_EVERY_S
from app.render import inject_css, key_values, report_table, service_or_stop
from app.service import Busy
from app.snippets import local_time, md_escape
from indexer import IndexerError, add_synced_folder, built_models, remove_synced_folder, synced_folders

inject_css()
service = service_or_stop()
state = st.session_state


def signed_in() -> bool:
    """This session signed in as admin (on the Ingest page); the Status page itself never asks for the password."""
    text, _ = configured_hash(lambda name: st.secrets.get(name))
    return text is not None and state.get("admin") == fingerprint(text)


def describe_model(card) -> str:
    tasks = md_escape(", ".join(card.tasks)) if card.tasks else "none"
    return f"MoE mode `{card.moe_mode or 'unknown'}`, tasks: {tasks}"  # a mode is a fixed word: safe in a code span


def describe_timings(card) -> str:
    """Both CPU files' speed as `python -m embedder prepare` measured it here (what chose the ONNX variant)."""
    if card.int8_texts_per_s is None or card.fp32_texts_per_s is None:
        return "not measured"
    return f"{card.int8_texts_per_s:.1f} / {card.fp32_texts_per_s:.1f} texts/s"


def start_reindex(model: str | None, what: str) -> None:
    try:
        state["reindex_job"] = service.start_reindex(model=model)
        state["reindex_what"] = what
    except Busy as exc:
        state["reindex_refused"] = str(exc)


def reindex_progress(serving: str, admin: bool) -> None:
    """The running re-index: a fragment rerun every PANEL_EVERY_S seconds while one runs, reading only the job's
    progress; when it ends the whole page is drawn again, with the model now serving."""
    running = service.reindexing
    if running is not None:
        state["reindex_watching"] = True
        st.progress(running.fraction, text=md_escape(f"Re-indexing: {running.message}. Searches keep using "
                                                     f"{serving} until the new index is complete."))
        if admin:
            st.button("Cancel the re-index", key="cancel-reindex", icon=":material/cancel:",
                      disabled=running.cancel.is_set(), on_click=service.cancel, args=("reindex",),
                      help="Stops after the document in progress. The index in service is unchanged; what was "
                           "rebuilt is kept, and the next re-index with this model continues from it.")
    elif state.pop("reindex_watching", None) is not None:
        st.rerun(scope="app")  # it ended (the switch happened, or not): redraw the page with the model serving now


def lifecycle() -> None:
    """Serving vs current model (a newly published version is seen on each visit), the running reindex, the
    switch."""
    stats = service.pipeline.stats()  # polls the model's pointer: a new current version is seen here
    serving, current = service.pipeline.model_info(), service.pipeline.model_info(current=True)
    st.markdown("### Model in service")
    with st.container(horizontal=True):
        st.metric("Serving queries", md_escape(stats.serving_model), border=True,
                  help="The model that built the active index; queries are embedded by it")
        st.metric("Current model", md_escape(stats.current_model), border=True,
                  help="What MOESEARCH_MODEL names now (a published name follows its current pointer)")
        st.metric("Index", "stale" if stats.stale else "up to date", border=True)
    # Names are escaped as markdown text, never inside a code span (where a backslash shows as itself)
    st.markdown(f"**Serving** {md_escape(stats.serving_model)}: {describe_model(serving)}  \n"
                f"**Current** {md_escape(stats.current_model)}: {describe_model(current)}")
    if error := stats.extra.get("current_model_error"):
        st.error(f"The current model cannot be loaded: {md_escape(error)}")
    job = state.get("reindex_job")
    running = service.reindexing
    admin = signed_in()
    if running is not None:
        state["reindex_watching"] = True  # its end (even before the panel's first run) redraws the page
    st.fragment(run_every=PANEL_EVERY_S if running is not None else None)(reindex_progress)(stats.serving_model,
                                                                                           admin)
    if running is None and job is not None and job.finished:
        if job.error and job.cancel.is_set():
            st.info(f"The re-index was cancelled: {md_escape(job.error)}.")
        elif job.error:
            st.error(f"The re-index stopped: {md_escape(job.error)}. The index is unchanged.")
        else:
            st.success(f"Switched: queries are now served by {md_escape(stats.serving_model)} "
                       f"({job.result.ok} documents rebuilt, {job.result.duplicates} already there).")
    if refused := state.pop("reindex_refused", None):
        st.warning(f"Not started: {md_escape(refused)}.")
    if running is None and stats.stale:
        st.warning(f"The index was built with {md_escape(stats.serving_model)}; the current model is "
                   f"{md_escape(stats.current_model)}. "
                   "Searches use the index's own model until it is re-indexed.")
        if admin:
            st.button("Re-index with the new model", key="reindex-new", type="primary", icon=":material/refresh:",
                      disabled=bool(error) or not stats.documents, on_click=start_reindex,
                      args=(None, stats.current_model))
        else:
            st.caption("Sign in on the Ingest page to re-index.")


st.markdown("## :material/monitor_heart: Status")
lifecycle()

stats = service.pipeline.stats()
card = service.pipeline.model_info()
with st.container(horizontal=True):
    st.metric("Documents", stats.documents, border=True)
    st.metric("Passages (chunks)", stats.chunks, border=True)
    st.metric("Provider", card.provider.removesuffix("ExecutionProvider"), border=True,
              help="The onnxruntime execution provider the embedder's session really runs on")
    st.metric("Vector size", stats.dim, border=True)

left, right = st.columns(2, gap="large")
with left:
    st.markdown("### Model")
    admin = signed_in()  # server paths and file names are for the admin only
    name = f"**{md_escape(card.model_id)}**"
    st.markdown(f"{name}  \n{md_escape(str(card.model_dir))}" if admin else name)
    if card.summary:
        st.markdown(card.summary)
    s = card.settings
    rows = {"version": card.label, "MoE mode": card.moe_mode, "tasks": ", ".join(card.tasks) or "none",
            "model file": card.model_file, "ONNX variant": card.variant_summary or card.onnx_variant,
            "int8 / fp32 on this CPU": describe_timings(card), "session providers": ", ".join(card.session_providers),
            "available providers": ", ".join(card.available_providers),
            "onnxruntime": card.onnxruntime_version, "device setting": service.settings.device,
            "pooling": s.get("pooling", ""), "Matryoshka dims": ", ".join(map(str, s.get("matryoshka_dims", []))),
            "max length": s.get("max_length", ""), "query prefix": repr(s.get("query_prefix", "")),
            "document prefix": repr(s.get("document_prefix", ""))}
    if not admin:
        rows.pop("model file")
    key_values(rows)
with right:
    st.markdown("### Store")
    kind = {"edge": "embedded (qdrant-edge)", "local": "embedded (qdrant-client local mode)",
            "memory": "in memory", "server": "Qdrant server"}.get(stats.backend, stats.backend)
    rows = {"backend": kind, "location": stats.location, "collection": stats.collection,
            "index built with": stats.model_id, "configured model": stats.configured_model_id,
            "re-index needed": "yes" if stats.reindex_needed else "no",
            "interrupted chunks (hidden)": stats.incomplete_chunks,
            "chunk tokens / overlap": f"{stats.extra.get('chunk_tokens', '')} / {stats.extra.get('chunk_overlap', '')}"}
    if stats.cluster is not None:
        rows.update({f"cluster: {k}": v for k, v in stats.cluster.items()})
    if not admin:
        rows["location"] = "shown to the admin (sign in on the Ingest page)"
    key_values(rows)
    if (job := service.busy) is not None:
        st.info(f"Running now: {md_escape(job.describe())}")

st.markdown("### Models on this server")
st.caption("Built at install from pip wheels; select one with the setting shown and restart (`prepare` builds it), "
           "then re-index.")
st.dataframe([{"model": m.name, "languages": m.languages, "state": "serving" if m.serving else
               ("built" if m.built else "not built yet"), "select with": m.setting}
              for m in built_models(card.model_dir)], hide_index=True, width="stretch")

others = [c for c in service.pipeline.collections() if c.state != "active"]
if others:
    st.markdown("### Other indexes")
    st.caption("Previous indexes are kept for a rollback until an admin drops them (`python -m indexer gc`).")
    st.dataframe([c.to_dict() for c in others], hide_index=True, width="stretch")
    if signed_in() and service.reindexing is None:
        for c in others:
            if c.state == "ready" and c.model_dir and c.model != stats.serving_model:
                st.button(f"Switch back to {md_escape(c.model)}", key=f"rollback-{c.name}", icon=":material/undo:",
                          on_click=start_reindex, args=(c.model_dir, c.model))

st.markdown("### Last ingest")
last = service.last_report
if last is None:
    st.caption("Nothing has been ingested through the app yet.")
elif not admin:
    st.caption(f"Finished {local_time(last.get('finished_at', ''))}: {last.get('ok', 0)} ok, "
               f"{last.get('failed', 0)} failed. File names are shown to the admin (sign in on the Ingest page).")
else:
    report_table(last, f"{last.get('label', 'ingest')}, finished {local_time(last.get('finished_at', ''))}")

st.markdown("### Synced folders")
if signed_in():  # an admin registers a folder here (or: `python -m api sync add PATH`, POST /api/v1/sync/folders)
    with st.form("sync-folder", clear_on_submit=True, border=False):
        new_folder = st.text_input("Sync a folder on the server", key="sync-path", placeholder="/srv/documents",
                                   help="Within MOESEARCH_INGEST_ROOTS. New, changed, renamed and deleted files are "
                                        "followed from then on (file-system events, and a rescan every "
                                        "MOESEARCH_SYNC_RESCAN_S).")
        if st.form_submit_button("Sync folder", icon=":material/sync:") and new_folder.strip():
            try:
                added = add_synced_folder(service.settings, new_folder.strip())
                st.success(f"Syncing {md_escape(added.path)}: its files are being ingested.")
            except (ValueError, IndexerError) as exc:
                st.error(md_escape(str(exc)))
folders = synced_folders(service.settings)
if not folders:
    st.caption("No synced folders. An admin adds one within MOESEARCH\\_INGEST\\_ROOTS here (signed in), with "
               "`python -m api sync add PATH` or `POST /api/v1/sync/folders`.")
else:
    show_paths = signed_in()  # server paths are for the admin only
    st.dataframe([{"folder": f.path if show_paths else "(sign in to see)", "last sync": local_time(f.last_sync or ""),
                   "files": f.files, "indexed": f.indexed, "failed": f.failed, "skipped": f.skipped,
                   "error": f.last_error or ""} for f in folders], hide_index=True, width="stretch")
    failures = [(path, reason) for f in folders for path, reason in f.failures]
    if failures and show_paths:
        with st.expander(f"{len(failures)} failed file(s): each is tried again when it changes"):
            st.dataframe([{"file": p, "reason": r} for p, r in failures], hide_index=True, width="stretch")
    if show_paths:
        for i, f in enumerate(folders):
            st.button(f"Stop syncing {md_escape(f.path)}", key=f"unsync-{i}", icon=":material/sync_disabled:",
                      on_click=remove_synced_folder, args=(service.settings, f.path),
                      help="Its documents stay in the index; delete them on the Ingest page if need be.")
