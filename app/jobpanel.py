"""The Ingest page's job panel: this session's latest job (an ingest or a re-index), or the job running in the app,
refreshed by itself while one runs.

The panel is a Streamlit fragment rerun every ``PANEL_EVERY_S`` seconds while a job runs (not at all otherwise).
A rerun reads only the job's progress (its fraction, message and whether it is done: attributes of the ``Job``,
no store read, no documents table) and reruns the whole page once, when the job ends, so the table below shows
the new documents.  Its rate is what it costs: every rerun is Python in the app's process, whose interpreter lock
the searches share; at 0.5 s an open progress page took the search p95 during an ingest from 22 ms idle to 94 ms
(``bench/search_during_ingest.py``, docs/operations-ingest.md).  Ingest and re-index jobs are refreshed alike (a
re-index runs in its own lane, ``Service.reindexing``, beside ``Service.busy``).
"""

from __future__ import annotations

import streamlit as st

from app.render import report_table
from app.service import Job, Service
from app.snippets import md_escape

PANEL_EVERY_S = 2.5  # seconds between the panel's reruns while a job runs
CANCEL_HELP = {"ingest": "Files already ingested stay; the one in progress is rolled back; the rest are listed as "
                         "not attempted.",
               "reindex": "Stops after the document in progress. The index in service is unchanged; what was rebuilt "
                          "is kept, and the next re-index with this model continues from it."}


def running_job(service: Service) -> Job | None:
    """The app's running job, if any: an ingest or delete, else a re-index."""
    return service.busy or service.reindexing


def refresh_every(job: Job | None, service: Service) -> float | None:
    """Seconds between the panel's reruns: ``PANEL_EVERY_S`` while this session's job or any job of the app runs,
    else None (the panel is drawn with the page only)."""
    live = (job is not None and not job.finished) or running_job(service) is not None
    return PANEL_EVERY_S if live else None


def _panel(service: Service) -> None:
    state = st.session_state
    job: Job | None = state.get("job")
    running = running_job(service)
    if job is None or (running is not None and running is not job and job.finished):
        if running is not None:
            state["watching"] = True
            st.progress(running.fraction, text=f"Running now: {md_escape(running.describe())}. Searches keep working.")
        elif state.pop("watching", None) is not None:
            st.rerun()  # someone else's job just finished: refresh the documents table
        if job is None:
            return
    title = f"{job.kind.capitalize()} of {job.label}"
    if not job.finished:
        st.progress(job.fraction, text=md_escape(f"{title}: {job.message}"))
        if job.kind in CANCEL_HELP:
            st.button("Cancel", key="cancel-job", icon=":material/cancel:", disabled=job.cancel.is_set(),
                      on_click=service.cancel, args=(job.kind,), help=CANCEL_HELP[job.kind])
        return
    if job.error:
        st.progress(job.fraction, text=md_escape(f"{title} stopped"))
        kept = ("The index in service is unchanged." if job.kind == "reindex" else
                "Documents finished before the failure are kept.")
        if job.cancel.is_set():
            st.info(f"The {job.kind} was cancelled: {md_escape(job.error)}. {kept}")
        else:
            st.error(f"The {job.kind} stopped: {md_escape(job.error)}. {kept}")
    else:
        st.progress(1.0, text=md_escape(f"{job.kind.capitalize()} finished: {job.label}"))
        report_table(job.result, title)
    if state.get("job_shown") is not job:
        state["job_shown"] = job
        st.rerun()  # refresh the documents table below


def job_panel(service: Service) -> None:
    """Draw the panel: a fragment that reruns itself while a job runs."""

    @st.fragment(run_every=refresh_every(st.session_state.get("job"), service))
    def panel() -> None:
        _panel(service)

    panel()
