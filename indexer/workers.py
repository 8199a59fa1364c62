"""Embedding worker processes for bulk ingest: N spawned processes, each with its own onnxruntime Embedder.

The main process keeps reading, extraction, chunking and every store call (see ``bulk.py``); a worker only turns
a batch of chunk texts into vectors.  Each worker loads the same model folder, ONNX file, device, dim and max
length as the main process's embedder (``WorkerSpec.of``) with ``intra_op_num_threads = cores // N``, so N workers
share the machine instead of oversubscribing it, and it embeds exactly the batches the one-process path embeds
(same texts, same batch size), so the vectors are the same.

Processes are started with the ``spawn`` method: no onnxruntime session, store handle or lock is inherited from
the parent, and the same code runs on Linux, macOS and Windows.  Never imports torch.

For a job of a process that serves searches (``background.py``) the spec also says how much nicer than that process
the workers run (``WorkerSpec.nice``: each is reniced as soon as it is spawned, before it imports anything) and
whether onnxruntime's threads may spin between batches (off there: a spinning thread takes CPU from searches).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path

import numpy as np

from .children import ignore_sigint, lower_priority, sigint_held, watch_parent

log = logging.getLogger(__name__)

_EMBEDDER = None  # the worker process's Embedder, loaded once by _init


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """onnxruntime intra-op threads for each of ``workers`` processes: the cores split evenly, at least 1."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return max(1, (cores or available_cores()) // workers)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load the same embedder as the main process (picklable)."""

    model_dir: str
    device: str  # "cpu" | "cuda": where the main process's session really runs
    dim: int
    max_length: int
    variant: str | None  # the ONNX file the main process runs (None: the device's default file)
    threads: int
    nice: int = 0  # how much nicer than the main process the workers run (0: the same priority)
    spinning: bool = True  # onnxruntime's threads busy-wait between batches (runtime.open_session)

    @classmethod
    def of(cls, embedder, workers: int) -> WorkerSpec:
        from embedder.runtime import CUDA
        from embedder.settings import ONNX_FILES

        model_file = getattr(embedder, "model_file", None)
        if model_file is None or getattr(embedder, "model_dir", None) is None:
            raise TypeError(f"embedding workers need an embedder.runtime.Embedder (a model folder with ONNX "
                            f"files), got {type(embedder).__name__}")
        variants = {name: variant for variant, name in ONNX_FILES.items()}
        device = "cuda" if getattr(embedder, "provider", "") == CUDA else "cpu"
        return cls(str(Path(embedder.model_dir).absolute()), device, int(embedder.dim), int(embedder.max_length),
                   variants.get(Path(model_file).name), threads_per_worker(workers))

    def load(self):
        from embedder.runtime import Embedder

        return Embedder(self.model_dir, device=self.device, dim=self.dim, variant=self.variant, threads=self.threads,
                        max_length=self.max_length, spinning=self.spinning)  # a worker only embeds batches


class _NicerProcess(SpawnProcess):
    """A spawned worker whose priority is lowered by its parent the moment it exists (``nice`` steps)."""

    nice = 0

    def start(self) -> None:
        super().start()
        if self.nice:
            lower_priority(self.pid, self.nice)


class _Spawn(SpawnContext):
    """The ``spawn`` start method, with every process it starts ``nice`` steps nicer than the caller."""

    def __init__(self, nice: int):
        super().__init__()
        self.nice = nice

    def Process(self, *args, **kwargs) -> SpawnProcess:  # noqa: N802 - multiprocessing's name for it
        process = _NicerProcess(*args, **kwargs)
        process.nice = self.nice
        return process


def _init(spec: WorkerSpec) -> None:
    global _EMBEDDER
    ignore_sigint()
    watch_parent()
    _EMBEDDER = spec.load()


def _ready() -> int:
    return os.getpid()


def _embed(texts: list[str], batch_size: int) -> np.ndarray:
    return _EMBEDDER.embed_documents(texts, batch_size=batch_size)  # (b, D) float32


class WorkersUnavailable(RuntimeError):
    """The embedding worker processes could not be started (the message says why)."""


class EmbedPool:
    """N embedding processes behind ``submit(texts) -> Future[(b, D) array]``.

    >>> with EmbedPool(WorkerSpec.of(embedder, 2), 2) as pool:
    ...     vectors = pool.submit(["a chunk", "another"], 32).result()
    """

    def __init__(self, spec: WorkerSpec, workers: int, start_timeout: float = 300.0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.spec = spec
        self.workers = workers
        self.start_timeout = start_timeout
        self.restarts = 0
        self.pids: tuple[int, ...] = ()  # the workers' process ids (as they answered the start's round trip)
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = _Spawn(self.spec.nice) if self.spec.nice else multiprocessing.get_context("spawn")
        with sigint_held():  # every worker is spawned now, holding Ctrl-C back from its first instruction
            executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init,
                                           initargs=(self.spec,))
            ready = [executor.submit(_ready) for _ in range(self.workers)]
        try:  # a round trip: the model loads in the workers (a broken folder fails here, not per file)
            self.pids = tuple(sorted({future.result(timeout=self.start_timeout) for future in ready}))
        except (BrokenProcessPool, FutureTimeout, OSError) as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            raise WorkersUnavailable(f"embedding workers could not start ({type(exc).__name__}: {exc}); see the "
                                     "worker's traceback above") from exc
        log.info("%d embedding workers (%s, %d threads each%s) on %s", self.workers, self.spec.device,
                 self.spec.threads, f", {self.spec.nice} steps nicer" if self.spec.nice else "",
                 Path(self.spec.model_dir).name)
        return executor

    def submit(self, texts: Sequence[str], batch_size: int) -> Future:
        return self._executor.submit(_embed, list(texts), batch_size)

    def restart(self) -> None:
        """Replace a broken pool (a worker died) with fresh processes; raises ``WorkersUnavailable``."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        log.warning("an embedding worker died; restarting the pool (restart %d)", self.restarts)
        self._executor = self._start()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EmbedPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
