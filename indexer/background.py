"""The jobs of a process that serves searches (the app): they embed in a worker process at a lower priority.

A search embeds its query and searches within tens of milliseconds; an ingest or re-index embeds for minutes.  In
one process they share the cores and the query waits behind the ingest's onnxruntime threads (measured on 2 cores:
search p95 24 ms idle, 1.5 s during an ingest).  So a job started with ``background=True`` (``Pipeline.ingest`` /
``reindex``, what ``app/service.py`` does) embeds in its own process (``workers.EmbedPool``), and the serving
process keeps its own onnxruntime session for queries:

- the worker runs ``MOESEARCH_INGEST_NICE`` steps nicer than the serving process, from the moment it is spawned
  (so does the reader process that extracts the job's files, ``IngestLoop(nice=...)``): when a query comes, the
  kernel runs it first, on any core;
- it has ``MOESEARCH_INGEST_THREADS`` onnxruntime threads, which do not spin between batches.  By default a core is
  left to queries outright (the cores less one) from ``LEAVE_A_CORE_FROM`` cores up, where that keeps >= 0.8 of the
  ingest's embedding; on fewer cores the worker may use them all and the priority alone puts queries first (one
  thread of 2 cores embeds about half as fast: README, bulk ingest on an idle 2-core machine, where two one-thread
  workers match one two-thread session);
- it loads the serving process's model folder and ONNX file (``WorkerSpec.of``: the file ``Embedder.cpu_choice``
  chose, the same dim and max length), so the vectors are the ones the serving process would compute;
- it stays loaded ``MOESEARCH_INGEST_WORKER_IDLE_S`` seconds after a job (``WarmPool``), so the next upload does
  not wait for a process start and a model load (seconds for the multilingual model); then it is stopped and its
  memory (a second copy of the model) returned.

Files are settled by the same loop as ever (``bulk.PoolFeed``): one status per file, a bad file fails alone,
cancel and a dead worker are handled as in bulk ingest.  ``MOESEARCH_INGEST_EMBEDDING=in-process`` embeds in the
serving process instead (the path before this module; benchmarks measure the two against each other).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .bulk import PoolFeed
from .files import Source
from .ingest import IngestLoop
from .workers import EmbedPool, WorkerSpec, available_cores

log = logging.getLogger(__name__)
WORKER, IN_PROCESS = "worker", "in-process"  # MOESEARCH_INGEST_EMBEDDING
LEAVE_A_CORE_FROM = 5  # cores: from here on, the cores less one still give >= 0.8 of the embedding (4 of 5)


def job_threads(setting: int, cores: int | None = None) -> int:
    """onnxruntime threads for a job's embedding: ``setting``, or with 0 the cores less one from
    ``LEAVE_A_CORE_FROM`` cores up, else all of them (the worker's lower priority gives them to queries)."""
    if setting > 0:
        return setting
    cores = cores or available_cores()
    return cores - 1 if cores >= LEAVE_A_CORE_FROM else cores


@dataclass(frozen=True)
class JobEmbedding:
    """How a serving process's jobs embed (``IndexerSettings``: MOESEARCH_INGEST_*)."""

    where: str = WORKER  # worker | in-process
    nice: int = 5
    threads: int = 0  # 0: see job_threads
    idle_s: float = 300.0

    @classmethod
    def from_settings(cls, settings) -> JobEmbedding:
        return cls(settings.ingest_embedding, settings.ingest_nice, settings.ingest_threads,
                   settings.ingest_worker_idle_s)

    def spec(self, embedder, workers: int = 1) -> WorkerSpec:
        """The workers' spec: the serving embedder's model and file, this priority, this thread budget."""
        threads = max(1, job_threads(self.threads) // workers)
        return dataclasses.replace(WorkerSpec.of(embedder, workers), threads=threads, nice=self.nice, spinning=False)


class WarmPool:
    """The worker pool of a serving process's jobs, kept ``idle_s`` seconds after each one (0: closed at once).

    A job ``take``s a pool for its spec (the kept one if it matches, else a fresh one) and gives it back when it is
    done; a reindex running beside an ingest takes a second pool (only one is kept afterwards)."""

    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._kept: EmbedPool | None = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def _unkeep(self) -> EmbedPool | None:
        """The kept pool, no longer kept (call with the lock held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pool, self._kept = self._kept, None
        return pool

    def take(self, spec: WorkerSpec, workers: int) -> EmbedPool:
        """A pool of ``workers`` processes for ``spec``; raises ``WorkersUnavailable`` if one cannot start."""
        with self._lock:
            pool = self._unkeep()
        if pool is not None and pool.spec == spec and pool.workers == workers:
            pool.restarts = 0  # the restart budget is per job
            return pool
        if pool is not None:  # another model (a reindex) or another size
            pool.close()
        return EmbedPool(spec, workers)

    def give(self, pool: EmbedPool | None) -> None:
        """A job is done with ``pool`` (None: it gave it up): keep it for the next job, or close it."""
        if pool is None:
            return
        with self._lock:
            if self.idle_s > 0 and not self._closed:
                pool, self._kept = self._unkeep(), pool
                self._timer = threading.Timer(self.idle_s, self._expire, args=(self._kept,))
                self._timer.daemon = True
                self._timer.name = "moesearch-warm-pool"
                self._timer.start()
        if pool is not None:
            pool.close()

    def _expire(self, pool: EmbedPool) -> None:
        with self._lock:
            if self._kept is not pool:
                return  # taken (or replaced) meanwhile
            self._unkeep()
        log.info("stopping the idle embedding worker (MOESEARCH_INGEST_WORKER_IDLE_S=%g)", self.idle_s)
        pool.close()

    @property
    def kept(self) -> EmbedPool | None:
        """The pool waiting for the next job, if any."""
        return self._kept

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool = self._unkeep()
        if pool is not None:
            pool.close()


class Background:
    """A serving process's job embedding: the policy and its warm pool (one per ``Pipeline``)."""

    def __init__(self, settings):
        self.policy = JobEmbedding.from_settings(settings)
        self.pools = WarmPool(self.policy.idle_s)

    @property
    def in_worker(self) -> bool:
        return self.policy.where == WORKER

    @property
    def nice(self) -> int:
        return self.policy.nice

    def feed(self, loop: IngestLoop, sources: Sequence[Source], workers: int = 1) -> PoolFeed:
        """A feed embedding ``sources`` in the warm pool (started if need be: ``WorkersUnavailable`` if it cannot)."""
        spec = self.policy.spec(loop.writer.encoders.embedder, workers)
        return PoolFeed(loop, sources, self.pools.take(spec, workers), release=self.pools.give)

    def close(self) -> None:
        self.pools.close()
