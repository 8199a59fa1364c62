"""The one object every page talks to: a ``Pipeline`` (shared by all sessions through ``st.cache_resource``)
plus what the app adds on top: a non-blocking guard so only one ingest/delete/reindex runs at a time (other
admins get "busy" at once instead of waiting behind it), the running job's progress, the last ingest report
(kept on disk), the model card, and router choices for the "why these results" chart.

Searches never wait for an ingest: the pipeline serves reads concurrently with its single writer, and a
reindex switches collections under a short exclusive lock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import streamlit as st

from indexer.pipeline import (
    DocumentFile,
    DocumentInfo,
    Hit,
    IngestReport,
    Pipeline,
    ProgressEvent,
    SearchFilters,
    Stats,
    Upload,
)
from indexer.settings import IndexerSettings

from .sample import sample_files

log = logging.getLogger(__name__)
MODES = ("hybrid", "dense", "keyword")
Progress = Callable[[ProgressEvent], None]


class Busy(RuntimeError):
    """Another ingest, delete or reindex is running in this app; the message says which."""


@dataclass
class Job:
    """One write operation: its live progress while it runs, then its result or error."""

    kind: str  # "ingest" | "delete" | "reindex"
    label: str
    started: float
    id: int = 0
    fraction: float = 0.0
    message: str = "starting"
    result: object = None  # an IngestReport for ingest / reindex
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> str:
        return (f"{self.kind} of {self.label} (started {time.strftime('%H:%M:%S', time.localtime(self.started))}, "
                f"{self.fraction:.0%}: {self.message})")


@dataclass(frozen=True)
class RoutingView:
    """Router choices for one text, restricted to the text's own tokens (no prefix, [CLS] or [SEP])."""

    tokens: list[str]
    layers: list[int]  # model layer index of each MoE layer
    experts: np.ndarray  # (L, T, k) expert ids
    weights: np.ndarray  # (L, T, k) routing weights (sum to 1 over k)
    num_experts: int

    @property
    def usage(self) -> np.ndarray:
        """(L, E): share of the tokens' routing weight each expert received, per layer (rows sum to 1)."""
        out = np.zeros((len(self.layers), self.num_experts))
        for layer in range(len(self.layers)):
            np.add.at(out[layer], self.experts[layer].ravel(), self.weights[layer].ravel())
        total = out.sum(axis=1, keepdims=True)
        return out / np.maximum(total, 1e-12)


@dataclass(frozen=True)
class ModelCard:
    model_id: str
    model_dir: str
    summary: str
    provider: str  # the onnxruntime provider the live session runs on
    session_providers: tuple[str, ...]
    available_providers: tuple[str, ...]
    onnxruntime_version: str
    model_file: str
    settings: dict


class Service:
    def __init__(self, settings: IndexerSettings, pipeline: Pipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline or Pipeline(settings)
        self._guard = threading.Lock()  # one write at a time; others are refused, not queued
        self.job: Job | None = None
        self._jobs: dict[int, Job] = {}
        self._jobs_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._report_file = settings.data_dir / "app" / "last_ingest.json"
        self.last_report: dict | None = self._load_report()

    def close(self) -> None:
        self.pipeline.close()

    # --- reads (never blocked by a writer) ----------------------------------------------------------------
    def stats(self) -> Stats:
        return self.pipeline.stats()

    def documents(self) -> list[DocumentInfo]:
        return self.pipeline.documents()

    def search(self, query: str, k: int, mode: str, sources: Sequence[str] = (),
               doc_types: Sequence[str] = ()) -> tuple[list[Hit], float]:
        t0 = time.perf_counter()
        filters = SearchFilters(sources=tuple(sources), doc_types=tuple(doc_types)) if sources or doc_types else None
        hits = self.pipeline.search(query, k=k, filters=filters, mode=mode)
        return hits, time.perf_counter() - t0

    def context(self, hit: Hit, query: str, before: int = 1, after: int = 1) -> list[Hit]:
        return self.pipeline.neighbours(hit, before, after, query=query)

    def original(self, doc_id: str) -> DocumentFile:
        return self.pipeline.document_file(doc_id)

    @property
    def has_router(self) -> bool:
        return bool(getattr(self.pipeline.embedder, "router_outputs", None))

    def routing(self, text: str, query: bool = True) -> RoutingView | None:
        """Which experts the router picks for ``text`` (as a query or a document); None for a dense model."""
        emb = self.pipeline.embedder
        if not self.has_router:
            return None
        r = emb.route(text, query=query)
        prefix = emb.settings.query_prefix if query else emb.settings.document_prefix
        start = 1 + len(emb.tokenizer.encode(prefix, add_special_tokens=False).ids)  # after [CLS] + prefix
        stop = len(r.tokens) - 1 if r.tokens and r.tokens[-1] == "[SEP]" else len(r.tokens)
        if stop <= start:  # nothing but the prefix: show every token rather than nothing
            start, stop = 0, len(r.tokens)
        return RoutingView(list(r.tokens[start:stop]), list(r.layers), r.experts[:, start:stop],
                           r.weights[:, start:stop], int(r.num_experts))

    def model_card(self) -> ModelCard:
        import onnxruntime as ort

        emb = self.pipeline.embedder
        session = emb.session.get_providers()
        readme = Path(emb.model_dir) / "README.md"
        summary = ""
        if readme.is_file():
            paragraphs = [p.strip() for p in readme.read_text(encoding="utf-8", errors="replace").split("\n\n")]
            summary = "\n\n".join(p for p in paragraphs if p and not p.startswith("#"))[:1500]
        raw = Path(emb.model_dir) / "moesearch.json"
        card = json.loads(raw.read_text()) if raw.is_file() else {}
        return ModelCard(emb.model_id, str(emb.model_dir), summary, session[0], tuple(session),
                         tuple(ort.get_available_providers()), ort.__version__,
                         Path(getattr(emb, "model_file", "")).name, card)

    def cluster_status(self) -> dict | None:
        """Qdrant cluster state when the store is a server (None for embedded stores).

        Stop-gap until the indexer reports it: asks the pipeline's qdrant-client directly."""
        root = self.pipeline.root
        if getattr(root, "kind", "") != "server":
            return None
        client = getattr(root, "client", None)
        out: dict = {}
        try:
            status = client.cluster_status()
            out["cluster"] = getattr(status, "status", str(status))
            peers = getattr(status, "peers", None)
            if peers:
                out["peers"] = len(peers)
                out["this peer"] = getattr(status, "peer_id", "")
            info = client.collection_cluster_info(self.stats().collection)
            out["shards"] = getattr(info, "shard_count", "")
            out["local shards"] = len(getattr(info, "local_shards", []) or [])
            out["remote shards"] = len(getattr(info, "remote_shards", []) or [])
        except Exception as exc:  # an old server, a disabled cluster API, a timeout: report, do not fail
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    # --- writes (one at a time; a second one is refused at once) -----------------------------------------------
    def _claim(self, kind: str, label: str) -> Job:
        if not self._guard.acquire(blocking=False):
            job = self.job
            raise Busy(f"wait for the running {job.describe() if job else kind} to finish")
        job = self.job = Job(kind, label, time.time(), next(self._ids))
        with self._jobs_lock:
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[:-20]:  # keep the last few for sessions to look up
                del self._jobs[old]
        return job

    def _release(self, job: Job) -> None:
        self.job = None
        self._guard.release()
        job.fraction = 1.0 if job.error is None else job.fraction
        job.done.set()

    @staticmethod
    def _notifier(job: Job, progress: Progress | None) -> Progress:
        def notify(event: ProgressEvent) -> None:
            job.fraction, job.message = event.fraction, event.message
            if progress is not None:
                progress(event)

        return notify

    def _run(self, kind: str, label: str, work: Callable[[Progress], object], progress: Progress | None):
        """Run a write in the calling thread (refused with ``Busy`` while another one runs)."""
        job = self._claim(kind, label)
        try:
            job.result = work(self._notifier(job, progress))
            return job.result
        except BaseException as exc:
            job.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._release(job)

    def _start(self, kind: str, label: str, work: Callable[[Progress], object]) -> Job:
        """Run a write in a background thread, so it outlives the browser session that asked for it (a closed
        tab or a click elsewhere stops that session's script, never the ingest). Progress is on the Job."""
        job = self._claim(kind, label)

        def target() -> None:
            try:
                job.result = work(self._notifier(job, None))
            except Exception as exc:  # reported on the job; what was stored before the failure stays
                log.exception("%s of %s failed", kind, label)
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                self._release(job)

        threading.Thread(target=target, name=f"moesearch-{kind}-{job.id}", daemon=True).start()
        return job

    @property
    def busy(self) -> Job | None:
        return self.job

    def job_by_id(self, job_id: int | None) -> Job | None:
        with self._jobs_lock:
            return self._jobs.get(job_id) if job_id is not None else None

    def _ingest_work(self, items: list, label: str) -> Callable[[Progress], IngestReport]:
        def work(notify: Progress) -> IngestReport:
            report = self.pipeline.ingest(items, progress=notify)
            self._save_report(report, label)
            return report

        return work

    @staticmethod
    def _uploads(files: Iterable[tuple[str, bytes]]) -> tuple[list[Upload], str]:
        uploads = [Upload(Path(name.replace("\\", "/")).name or "unnamed", data) for name, data in files]
        return uploads, f"{len(uploads)} uploaded file{'s' if len(uploads) != 1 else ''}"

    def ingest(self, items: Iterable[str | Path | Upload], label: str,
               progress: Progress | None = None) -> IngestReport:
        items = list(items)
        return self._run("ingest", label, self._ingest_work(items, label), progress)

    def ingest_uploads(self, files: Iterable[tuple[str, bytes]], progress: Progress | None = None) -> IngestReport:
        uploads, label = self._uploads(files)
        return self.ingest(uploads, label, progress)

    def ingest_sample(self, progress: Progress | None = None) -> IngestReport:
        return self.ingest(sample_files(), "the sample corpus", progress)

    def start_ingest(self, items: Iterable[str | Path | Upload], label: str) -> Job:
        items = list(items)
        return self._start("ingest", label, self._ingest_work(items, label))

    def start_ingest_uploads(self, files: Iterable[tuple[str, bytes]]) -> Job:
        uploads, label = self._uploads(files)
        return self.start_ingest(uploads, label)

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        def work(_notify: Progress) -> list[str]:
            removed: list[str] = []
            for doc_id in doc_ids:
                removed += self.pipeline.delete(doc_id)
            return removed

        return self._run("delete", f"{len(doc_ids)} documents", work, None)

    def _reindex_work(self, force: bool) -> Callable[[Progress], IngestReport]:
        def work(notify: Progress) -> IngestReport:
            report = self.pipeline.reindex(notify, force=force)
            if report.files:
                self._save_report(report, "re-index of all documents")
            return report

        return work

    def reindex(self, progress: Progress | None = None, force: bool = False) -> IngestReport:
        return self._run("reindex", "all documents", self._reindex_work(force), progress)

    def start_reindex(self, force: bool = False) -> Job:
        return self._start("reindex", "all documents", self._reindex_work(force))

    # --- the last ingest report (survives restarts) ----------------------------------------------------------------
    def _load_report(self) -> dict | None:
        try:
            return json.loads(self._report_file.read_text())
        except (OSError, ValueError):
            return None

    def _save_report(self, report: IngestReport, label: str) -> None:
        saved = {"label": label, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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


@st.cache_resource(show_spinner="Loading the model and opening the index...", on_release=_release)
def _open(key: str, _settings: IndexerSettings) -> Service:
    log.info("opening the pipeline (%s)", key[:12])
    return Service(_settings)


def get_service() -> Service:
    """The process-wide Service for the current settings (environment), created on first use."""
    settings = IndexerSettings.from_env()
    return _open(settings_key(settings), settings)
