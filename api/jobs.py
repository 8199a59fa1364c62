"""The API's write jobs (ingest, re-index): queued, run one at a time on a worker thread, observable and cancellable.

A job is accepted at once (202 with its id) and waits behind the running one (at most ``max_queued`` wait; more
are refused with ``queue_full``).  A re-index has its own lane, as in the app: ingest jobs run beside it (the
pipeline carries them into the new index).  The pipeline's write lock is what serialises the writes themselves;
searches never wait for them.  Finished jobs are kept (``MAX_JOBS_KEPT``) for ``GET /jobs/{id}``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from indexer import IngestReport, ProgressEvent, ReindexCancelled

from .errors import ApiError
from .settings import MAX_JOBS_KEPT

log = logging.getLogger("moesearch.api.jobs")
Work = Callable[[Callable[[ProgressEvent], None], threading.Event], object]
STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    kind: str  # ingest | reindex
    label: str
    created_at: float
    state: str = "queued"
    fraction: float = 0.0
    message: str = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    progress: ProgressEvent | None = None  # the last progress event
    report: dict | None = None  # the ingest report (IngestReport.to_dict(): what the CLI prints with --json)
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "label": self.label, "state": self.state,
                "fraction": round(self.fraction, 4), "message": self.message, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at, "report": self.report,
                "progress": dataclasses.asdict(self.progress) if self.progress is not None else None,
                "error": self.error, "cancel_requested": self.cancel.is_set()}

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class Jobs:
    def __init__(self, max_queued: int):
        self.max_queued = max_queued
        self._lanes = {"ingest": ThreadPoolExecutor(1, thread_name_prefix="moesearch-api-job"),
                       "reindex": ThreadPoolExecutor(1, thread_name_prefix="moesearch-api-reindex")}
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)

    def submit(self, kind: str, label: str, work: Work, cleanup: Callable[[], None] | None = None) -> Job:
        lane = "reindex" if kind == "reindex" else "ingest"
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state == "queued")
            if waiting >= self.max_queued:
                raise ApiError("queue_full", f"{waiting} jobs are waiting (MOESEARCH_API_MAX_QUEUED_JOBS); try again "
                               "when one has finished")
            if lane == "reindex" and any(j.kind == "reindex" and not j.finished for j in self._jobs.values()):
                raise ApiError("conflict", "a re-index job is queued or running; wait for it to finish")
            job = Job(uuid.uuid4().hex, kind, label, time.time())
            self._jobs[job.id] = job
            self._trim()
        self._lanes[lane].submit(self._run, job, work, cleanup)
        return job

    def _trim(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished]
        for job_id in finished[:max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
            del self._jobs[job_id]

    def _run(self, job: Job, work: Work, cleanup: Callable[[], None] | None) -> None:
        def progress(event: ProgressEvent) -> None:
            job.fraction, job.message, job.progress = event.fraction, event.message, event

        try:
            if job.cancel.is_set():
                job.state, job.message = "cancelled", "cancelled before it started"
                return
            job.state, job.started_at, job.message = "running", time.time(), "starting"
            result = work(progress, job.cancel)
            if isinstance(result, IngestReport):
                job.report = result.to_dict()
            job.state = "cancelled" if job.cancel.is_set() else "done"
            job.fraction, job.message = 1.0, job.state
        except ReindexCancelled as exc:
            job.state, job.message = "cancelled", str(exc)
        except Exception as exc:  # the job's record carries the error; the server goes on
            log.exception("%s job %s failed", job.kind, job.id)
            job.state, job.error, job.message = "failed", f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished_at = time.time()
            if cleanup is not None:
                cleanup()
            with self._done:
                self._done.notify_all()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError("not_found", f"no job {job_id!r} (finished jobs are kept for the last {MAX_JOBS_KEPT})")
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if not job.finished:
            job.cancel.set()
            job.message = "cancelling"
        return job

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        with self._done:
            return self._done.wait_for(lambda: job.finished, timeout)

    def close(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                if not job.finished:
                    job.cancel.set()
        for lane in self._lanes.values():
            lane.shutdown(wait=True)
