"""Ingest page (admins): upload files or ingest a server folder, the documents table, delete, re-index."""

from __future__ import annotations

import math
import os
from pathlib import Path

import streamlit as st

from app.auth import admin_gate, sign_out_button
from app.jobpanel import job_panel
from app.render import documents_frame, inject_css, service_or_stop
from app.service import Busy
from app.snippets import local_time, md_escape
from indexer import accepted_types

inject_css()
service = service_or_stop()
if not admin_gate():
    st.stop()

state = st.session_state
state.setdefault("upload_round", 0)
cap_mb = service.settings.max_file_mb
PAGE_SIZE = 50  # documents per page of the table

with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown("## :material/upload_file: Ingest documents", width="content")
    st.space("stretch")
    with st.container(horizontal=True, vertical_alignment="center", width="content"):
        st.caption("Signed in as admin", width="content")
        sign_out_button()


def start_job(start) -> bool:
    """Start a background job (it outlives this browser session); its progress shows in the panel below."""
    try:
        job = start()
    except Busy as exc:
        st.warning(f"Another job is running; {md_escape(str(exc))}.")
        return False
    state["job"] = job
    state["upload_round"] += 1  # a fresh (empty) uploader
    return True


def uploader(button_key: str):
    """The multi-file uploader and its button (a new key per round, so an ingested batch is cleared)."""
    files = st.file_uploader(f"Documents, up to {cap_mb:g} MB each", accept_multiple_files=True,
                             key=f"upload-{state.upload_round}", max_upload_size=max(1, math.ceil(cap_mb)))
    st.caption(f"Accepted: {accepted_types()}. Files are recognised by their content, whatever their name.")
    n = len(files or [])
    label = f"Ingest {n} file{'s' if n != 1 else ''}" if n else "Ingest"
    clicked = st.button(label, type="primary", disabled=not n, key=button_key, icon=":material/play_arrow:")
    return files, clicked


upload_tab, folder_tab = st.tabs(["Upload files", "Folder on the server"])
with upload_tab:
    slot = st.empty()
    with slot.container():
        files, clicked = uploader("ingest-uploads")
    replace = st.checkbox("Replace documents that have the same name", key="replace-same-name",
                          help="Off: a different file under a name already indexed is kept as its own document, "
                               "e.g. 'a (2).txt'. On: it replaces the document of that name.")
    if clicked:
        uploads = [(f.name, f) for f in files]  # spooled to disk by the service, 1 MB at a time
        if start_job(lambda: service.start_ingest_uploads(uploads, replace=replace)):
            with slot.container():  # the batch leaves the uploader at once
                uploader("ingest-uploads-next")
with folder_tab:
    roots = [Path(r).expanduser().resolve() for r in service.settings.ingest_roots.split(os.pathsep) if r.strip()]
    if not roots:
        st.info("Ingesting folders on the server is off. To allow it, set `MOESEARCH_INGEST_ROOTS` to the folders "
                f"admins may ingest from (separated by `{os.pathsep}`) and restart the app.")
    else:
        st.caption("Allowed: " + ", ".join(md_escape(str(r)) for r in roots))  # escaped text: no code span
    folder = st.text_input("Folder or file path on the server", key="folder", placeholder=str(roots[0]) if roots
                           else "/srv/documents", disabled=not roots,
                           help="Folders are read recursively; hidden files and unsupported types are skipped.")
    if st.button("Ingest path", key="ingest-folder", disabled=not roots or not folder.strip(),
                 icon=":material/play_arrow:"):
        path = Path(folder.strip()).expanduser().resolve()  # symbolic links and '..' resolved before the check
        if not any(path.is_relative_to(root) for root in roots):
            st.error(f"{md_escape(str(path))} is outside the folders allowed by MOESEARCH\\_INGEST\\_ROOTS.")
        elif not path.exists():
            st.error(f"There is no file or folder {md_escape(repr(str(path)))} on the server.")
        else:
            start_job(lambda: service.start_ingest([path], str(path)))


job_panel(service)  # progress of this session's or the app's running job, refreshed while it runs

# --- documents ----------------------------------------------------------------------------------------------------
stats = service.pipeline.stats()
total = stats.documents
st.markdown(f"### Documents ({total})")
if flash := state.pop("flash", None):
    getattr(st, flash[0])(flash[1])
if not total:
    st.caption("No documents yet.")
else:
    pages = math.ceil(total / PAGE_SIZE)
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages}, {PAGE_SIZE} documents each)", 1, pages, key="doc_page",
                               width=220)
    docs = service.pipeline.documents((page - 1) * PAGE_SIZE, PAGE_SIZE)
    st.dataframe(documents_frame(docs), hide_index=True, width="stretch")
    labels = {d.doc_id: f"{d.source} · {local_time(d.ingested_at)} · {d.doc_id[:8]}" for d in docs}

    def ask_to_delete() -> None:  # the first click only asks: the documents are named in a confirm step
        state["delete_pending"] = {i: labels[i].split(" · ")[0] for i in state.get("delete_ids") or [] if i in labels}

    def forget_pending() -> None:
        state.pop("delete_pending", None)

    def delete_confirmed() -> None:
        pending = state.pop("delete_pending", None) or {}
        try:
            removed = service.delete(list(pending))
        except Busy as exc:
            state["flash"] = ("warning", f"Not deleted: {md_escape(str(exc))}.")
            return
        except Exception as exc:
            state["flash"] = ("error", f"Delete failed: {md_escape(f'{type(exc).__name__}: {exc}')}")
            return
        names = ", ".join(md_escape(pending[i]) for i in removed if i in pending)
        state["flash"] = ("success", f"Deleted {len(removed)} document{'s' * (len(removed) != 1)}: {names}")
        state["delete_ids"] = []

    pending = state.get("delete_pending")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        chosen = st.multiselect("Delete documents", list(labels), format_func=labels.get, key="delete_ids",
                                placeholder="Choose documents to delete", on_change=forget_pending)
        st.button("Delete", key="delete", disabled=not chosen or bool(pending), on_click=ask_to_delete,
                  icon=":material/delete:")
    if pending:
        n = len(pending)
        with st.container(border=True):
            st.warning(f"Delete {n} document{'s' * (n != 1)}: {', '.join(md_escape(v) for v in pending.values())}? "
                       "They leave the index, with their kept originals; this cannot be undone.",
                       icon=":material/warning:")
            with st.container(horizontal=True):
                st.button(f"Yes, delete {n} document{'s' * (n != 1)}", key="delete-confirm", type="primary",
                          on_click=delete_confirmed, icon=":material/delete_forever:")
                st.button("Cancel", key="delete-cancel", on_click=forget_pending)

# --- re-index -----------------------------------------------------------------------------------------------------
st.markdown("### Re-index")
if stats.reindex_needed:
    st.warning(f"The index was built with {md_escape(stats.model_id)}; the app is configured for "
               f"{md_escape(stats.configured_model_id)}. Re-index to search with the new model.")
else:
    st.caption(f"The index is up to date with {md_escape(stats.model_id)}. Re-indexing re-embeds every document "
               "with it into a new collection and switches over when done; searches keep using the old one until "
               "then.")
if st.button("Re-index all documents", key="reindex", icon=":material/refresh:", disabled=not total):
    if start_job(lambda: service.start_reindex(force=not stats.reindex_needed)):
        st.rerun()  # show the job's progress in the panel above
