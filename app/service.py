"""The app's job runner for writes and its last ingest report (kept on disk), around the process-wide ``Pipeline``
(shared by all sessions through ``st.cache_resource``): pages read through ``service.pipeline``, the indexer's
public API, and write through the jobs here.

Writes (ingest, delete, reindex) run as jobs on one-thread ``concurrent.futures`` executors, so they outlive the
browser session that asked for them; while one runs, another is refused at once with ``Busy`` (other admins are
told instead of waiting behind it).  A reindex has its own lane: it starts only when nothing else runs, and
ingest and delete may run while it does (the pipeline carries them into the new index before it switches).
The pipeline's own write lock is what serialises writes; searches never wait for them.  Everything the pages read
comes from the pipeline's API (``indexer``), never from the store or the model directly; uploads are spooled to
disk by the indexer (``spool_uploads``).

Ingest and reindex jobs run with ``background=True``: their files are read and their chunks embedded in separate,
lower-priority processes (``MOESEARCH_INGEST_EMBEDDING``, ``_NICE``, ``_THREADS``, ``_WORKER_IDLE_S``), and the
model in this process embeds only queries, so searches stay fast while a job runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import streamlit as st

from indexer import (
    IndexerSettings,
    IngestReport,
    Pipeline,
    ProgressEvent,
    Source,
    remove_spool,
    spool_uploads,
)

from .sample import sample_files

log = logging.getLogger(__name__)
MODES = ("hybrid", "dense", "keyword")
Progress = Callable[[ProgressEvent], None]


class Busy(RuntimeError):
    """Another ingest, delete or reindex is running in this app; the message says which."""


class NotEmpty(RuntimeError):
    """The index holds documents already (the sample corpus is for an empty one)."""


@dataclass
class Job:
    """One write operation: its live progress while it runs, then its result or error (from its future)."""

    kind: str  # "ingest" | "delete" | "reindex"
    label: str
    started: float
    fraction: float = 0.0
    message: str = "starting"
    future: Future = field(default_factory=Future, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)  # set: stop after this file

    def describe(self) -> str:
        return (f"{self.kind} of {self.label} (started {time.strftime('%H:%M:%S', time.localtime(self.started))}, "
                f"{self.fraction:.0%}: {self.message})")

    @property
    def finished(self) -> bool:
        return self.future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has finished (within ``timeout`` seconds)."""
        done, _ = wait([self.future], timeout)
        return bool(done)

    @property
    def result(self):
        """The job's result (an IngestReport for ingest / reindex) once it finished without error."""
        return self.future.result() if self.finished and self.future.exception() is None else None

    @property
    def error(self) -> str | None:
        exc = self.future.exception() if self.finished else None
        return f"{type(exc).__name__}: {exc}" if exc is not None else None


class Service:
    def __init__(self, settings: IndexerSettings, pipeline: Pipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline or Pipeline(settings)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moesearch-job")
        self._reindexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moesearch-reindex")
        self._slot = threading.Lock()  # makes "is a job running? then start mine" one step (never held while writing)
        self._running: Job | None = None
        self._reindex_job: Job | None = None
        self._report_file = settings.data_dir / "app" / "last_ingest.json"
        self.last_report: dict | None = self._load_report()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._reindexer.shutdown(wait=True)
        self.pipeline.close()

    # --- writes: jobs, one at a time (a second one is refused at once) ------------------------------------------
    @property
    def busy(self) -> Job | None:
        """The job running now, if any."""
        job = self._running
        return job if job is not None and not job.finished else None

    @property
    def reindexing(self) -> Job | None:
        """The reindex job running now, if any (ingest and delete may run beside it)."""
        job = self._reindex_job
        return job if job is not None and not job.finished else None

    def start(self, kind: str, label: str, work: Callable[[Progress], object],
              cancel: threading.Event | None = None) -> Job:
        """Run ``work(progress)`` as a background job (it outlives the browser session that asked for it: a closed
        tab or a click elsewhere stops that session's script, never the job).  Progress is on the Job.  A
        ``reindex`` runs in its own lane and starts only when no other job runs."""
        lane = kind == "reindex"
        with self._slot:
            running = self.busy or (self.reindexing if lane else None)
            if running is not None:
                raise Busy(f"wait for the running {running.describe()} to finish")
            job = Job(kind, label, time.time(), cancel=cancel or threading.Event())
            if lane:
                self._reindex_job = job
                job.future = self._reindexer.submit(self._execute, job, work)
            else:
                self._running = job
                job.future = self._executor.submit(self._execute, job, work)
        return job

    def run(self, kind: str, label: str, work: Callable[[Progress], object], progress: Progress | None = None):
        """Run a job and wait for it (refused with ``Busy`` while another one runs); its error is raised here."""
        def observed(notify: Progress):
            def both(event: ProgressEvent) -> None:
                notify(event)
                if progress is not None:
                    progress(event)

            return work(both)

        return self.start(kind, label, observed).future.result()

    @staticmethod
    def _execute(job: Job, work: Callable[[Progress], object]):
        def notify(event: ProgressEvent) -> None:
            job.fraction, job.message = event.fraction, event.message

        try:
            result = work(notify)
        except Exception:  # the future holds the error for the job's page; what was stored before it stays
            if job.cancel.is_set():
                log.info("%s of %s cancelled", job.kind, job.label)
            else:
                log.exception("%s of %s failed", job.kind, job.label)
            raise
        job.fraction = 1.0
        return result

    def _ingest_work(self, items: list, label: str, cancel: threading.Event | None = None, replace: bool = False,
                     spool: Path | None = None) -> Callable[[Progress], IngestReport]:
        def work(notify: Progress) -> IngestReport:
            try:
                report = self.pipeline.ingest(items, progress=notify, cancel=cancel, replace=replace, background=True)
            finally:
                if spool is not None:
                    remove_spool(spool)
            self._save_report(report, label)
            return report

        return work

    def cancel(self, kind: str = "ingest") -> bool:
        """Ask the running ingest (or ``kind="reindex"``: the reindex) to stop: what is done stays, the file in
        progress is rolled back; a cancelled reindex leaves the serving index as it was (False: none running)."""
        job = self.reindexing if kind == "reindex" else self.busy
        if job is None or job.kind != kind:
            return False
        job.cancel.set()
        job.message = "cancelling"
        return True

    def _uploads(self, files: Iterable[tuple[str, bytes | BinaryIO]]) -> tuple[list[Source], str, Path]:
        """Uploads spooled to disk (names made safe, see ``indexer.files.safe_name``)."""
        uploads, spool = spool_uploads(files, self.settings.data_dir / "app" / "spool")
        return uploads, f"{len(uploads)} uploaded file{'s' if len(uploads) != 1 else ''}", spool

    def ingest(self, items: Iterable[str | Path | Source], label: str,
               progress: Progress | None = None) -> IngestReport:
        return self.run("ingest", label, self._ingest_work(list(items), label), progress)

    def ingest_uploads(self, files: Iterable[tuple[str, bytes | BinaryIO]], progress: Progress | None = None,
                       replace: bool = False) -> IngestReport:
        uploads, label, spool = self._uploads(files)
        return self.run("ingest", label, self._ingest_work(uploads, label, None, replace, spool), progress)

    def ingest_sample(self, progress: Progress | None = None) -> IngestReport:
        return self.ingest(sample_files(), "the sample corpus", progress)

    def start_ingest(self, items: Iterable[str | Path | Source], label: str, replace: bool = False,
                     spool: Path | None = None) -> Job:
        cancel = threading.Event()
        try:
            return self.start("ingest", label, self._ingest_work(list(items), label, cancel, replace, spool), cancel)
        except Busy:
            if spool is not None:
                remove_spool(spool)
            raise

    def start_sample(self) -> Job:
        """Load the bundled sample corpus (its own files, nothing else) in the background, into an empty index only:
        refused with ``NotEmpty`` once the index holds a document, so it may be offered without sign-in on a fresh
        install.  Clicks from two browsers at once: the second is refused with ``Busy`` while the first loads, and
        with ``NotEmpty`` after it."""
        if self.pipeline.stats().documents:
            raise NotEmpty("the sample corpus is only loaded into an empty index")
        return self.start_ingest(sample_files(), "the sample corpus")

    def start_ingest_uploads(self, files: Iterable[tuple[str, bytes | BinaryIO]], replace: bool = False) -> Job:
        uploads, label, spool = self._uploads(files)
        return self.start_ingest(uploads, label, replace, spool)

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        def work(_notify: Progress) -> list[str]:
            return [removed for doc_id in doc_ids for removed in self.pipeline.delete(doc_id)]

        return self.run("delete", f"{len(doc_ids)} documents", work)

    def _reindex_work(self, force: bool, model: str | None, cancel: threading.Event | None = None
                      ) -> Callable[[Progress], IngestReport]:
        def work(notify: Progress) -> IngestReport:
            report = self.pipeline.reindex(notify, force=force, model=model, cancel=cancel, background=True)
            if report.files:
                self._save_report(report, "re-index of all documents")
            return report

        return work

    def reindex(self, progress: Progress | None = None, force: bool = False, model: str | None = None
                ) -> IngestReport:
        return self.run("reindex", "all documents", self._reindex_work(force, model), progress)

    def start_reindex(self, force: bool = False, model: str | None = None) -> Job:
        """Re-index in the background (with ``model``: that model, e.g. a previous version for a rollback)."""
        cancel = threading.Event()
        return self.start("reindex", "all documents", self._reindex_work(force, model, cancel), cancel)

    # --- the last ingest report (survives restarts) ----------------------------------------------------------------
    def _load_report(self) -> dict | None:
        try:
            return json.loads(self._report_file.read_text())
        except (OSError, ValueError):
            return None

    def _save_report(self, report: IngestReport, label: str) -> None:
        saved = {"label": label, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                 **report.to_dict()}
        self.last_report = saved
        try:
            self._report_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._report_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(saved, indent=1))
            tmp.replace(self._report_file)
        except OSError as exc:
            log.warning("cannot keep the last ingest report in %s: %s", self._report_file, exc)


def settings_key(settings: IndexerSettings) -> str:
    return hashlib.sha256(repr(settings).encode()).hexdigest()


def _release(service: Service) -> None:
    service.close()


# No spinner here: the server opens the service at start from a thread of its own (api.Runtime), where a spinner
# has no page to go to (Streamlit warns "missing ScriptRunContext"); pages open it under `opening()`.
@st.cache_resource(show_spinner=False, on_release=_release)
def _open(key: str, _settings: IndexerSettings) -> Service:
    log.info("opening the pipeline (%s)", key[:12])
    return Service(_settings)


def get_service() -> Service:
    """The process-wide Service for the current settings (environment), created on first use."""
    settings = IndexerSettings.from_env()
    return _open(settings_key(settings), settings)


def opening():
    """What a page shows while it waits for the service (the model loading): a spinner, after half a second."""
    return st.spinner("Loading the model and opening the index...")
