"""Reading one untrusted file (extract + chunk) in a worker process, under limits the file cannot escape.

A file is read by a spawned *reader* process, never by the process that serves searches or holds the store: a zip
bomb, a pathological PDF or a loader bug can only take the reader down.  While it works, the calling thread
watches it:

- **memory**: its resident size (``/proc/<pid>/statm``, every ``POLL`` s) against ``MOESEARCH_FILE_MEMORY_MB``,
  with ``RLIMIT_AS`` at ``AS_FACTOR`` times that as a backstop against a burst between two looks (a resident-size
  watchdog, because the reader's threads reserve address space they never touch: ``RLIMIT_AS`` alone would have to
  be set far above the RSS wanted);
- **time**: a wall-clock budget per file (``MOESEARCH_FILE_SECONDS``);
- **size of the result**: extracted characters (``MOESEARCH_MAX_CHARS``) and chunks (``MOESEARCH_MAX_CHUNKS``),
  counted in the reader as chunks are planned, so an oversized file stops early.

A file over a limit fails alone with an ``ExtractError`` naming the limit; the reader is killed and a fresh one
started for the next file.  The memory a process keeps after a large file would count against the next one, so an
idle reader that earlier files left larger by more than ``FRESH_SHARE`` of the next file's limit is replaced
first.  ``cancel`` (an ``threading.Event``) stops the file being read at once (``Cancelled``).  OCR progress
(pages done / pages to read) comes back as it happens.

Readers are kept between files and ingests (``Reader.shared()``: one per process, used by one file at a time), so
the ~0.5 s start of a Python process is paid once.  Nothing here touches the store.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .children import ignore_sigint, sigint_held, watch_parent
from .chunking import Chunk, iter_chunks
from .loaders.base import Extracted, ExtractError, Limits

log = logging.getLogger(__name__)
POLL = 0.02  # seconds between two looks at the reader's memory
AS_FACTOR = 4  # RLIMIT_AS (address space) = this x the memory limit, a backstop only (see the module doc)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
START_TIMEOUT = 120.0  # seconds for a reader process to start
FRESH_SHARE = 0.5  # an idle reader that earlier files left this share of a file's memory limit larger (than it
# was once started) is replaced before it reads the file
Progress = Callable[[int, int], None]


class Cancelled(Exception):
    """The job was cancelled while this file was being read (nothing of it was written)."""


@dataclass(frozen=True)
class ChunkPlan:
    """How the reader chunks: the embedder's tokenizer file and window (``Encoders.max_tokens`` / ``overlap``)."""

    tokenizer: str
    max_tokens: int
    overlap: int

    @classmethod
    def of(cls, encoders) -> ChunkPlan:
        from pathlib import Path

        return cls(str(Path(encoders.embedder.model_dir) / "tokenizer.json"), encoders.max_tokens, encoders.overlap)


@dataclass(frozen=True)
class FileCaps:
    """The limits one file is read under (``IndexerSettings``; each refusal names its variable)."""

    limits: Limits
    memory_mb: int  # MOESEARCH_FILE_MEMORY_MB
    seconds: float  # MOESEARCH_FILE_SECONDS
    max_chars: int  # MOESEARCH_MAX_CHARS
    max_chunks: int  # MOESEARCH_MAX_CHUNKS

    def __post_init__(self) -> None:
        for name in ("memory_mb", "seconds", "max_chars", "max_chunks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings) -> FileCaps:
        return cls(Limits.from_settings(settings), settings.file_memory_mb, settings.file_seconds, settings.max_chars,
                   settings.max_chunks)


def read_and_chunk(data: bytes, name: str, caps: FileCaps, plan: ChunkPlan, tokenizer,
                   progress: Progress | None = None) -> tuple[Extracted, list[Chunk]]:
    """The work itself (what the reader runs): extract, check the text's size, chunk up to the cap."""
    from .extract import extract

    extracted = extract(data, name, limits=caps.limits, progress=progress)
    chars = sum(len(t) for _, t in extracted.pages)
    if chars > caps.max_chars:
        raise ExtractError(f"too much text: {chars:,} characters, over the cap of {caps.max_chars:,} "
                           "(MOESEARCH_MAX_CHARS); split the file or raise the cap")
    chunks: list[Chunk] = []
    for chunk in iter_chunks(extracted.pages, tokenizer, plan.max_tokens, plan.overlap):
        if len(chunks) == caps.max_chunks:
            raise ExtractError(f"too many chunks: more than {caps.max_chunks:,} (MOESEARCH_MAX_CHUNKS); split the "
                               "file or raise the cap")
        chunks.append(chunk)
    return extracted, chunks


# --- the reader process ------------------------------------------------------------------------------------------
def _serve(conn) -> None:
    """The reader's loop: one request at a time, answered with progress messages and one outcome."""
    ignore_sigint()
    watch_parent()
    from tokenizers import Tokenizer

    tokenizers: dict[str, Tokenizer] = {}
    from . import extract  # noqa: F401 - the loaders, imported before the clock of the first file starts

    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        data, name, caps, plan = request
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = AS_FACTOR * caps.memory_mb * 2**20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        except (ValueError, OSError):
            pass
        try:
            tok = tokenizers.get(plan.tokenizer)
            if tok is None:
                tok = tokenizers[plan.tokenizer] = Tokenizer.from_file(plan.tokenizer)
                tok.no_truncation()
                tok.no_padding()
            outcome = ("ok", *read_and_chunk(data, name, caps, plan, tok,
                                             lambda done, total: conn.send(("progress", done, total))))
        except ExtractError as exc:
            outcome = ("refused", str(exc))
        except MemoryError:
            outcome = ("memory", "")
        except Exception as exc:  # a loader bug: the file fails, the reader goes on
            outcome = ("bug", f"{type(exc).__name__}: {exc}")
        del data
        try:
            conn.send(outcome)
        except MemoryError:
            conn.send(("memory", ""))
        if outcome[0] == "memory":
            return  # a fresh process for the next file


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process (Linux ``/proc``; None elsewhere or once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


class Reader:
    """One reader process (started on first use, replaced after a file kills it or runs over a limit)."""

    _shared: Reader | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one file at a time
        self._proc = None
        self._conn = None
        self.peak_rss = 0  # bytes: the largest resident size seen while reading the last file
        self.started = 0  # processes started (tests: a worker was replaced)
        self.base_rss = 0  # bytes: the resident size of the running reader once it was ready, before any file

    @classmethod
    def shared(cls) -> Reader:
        """The process's reader (kept between ingests; stopped at exit)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
                atexit.register(cls._shared.close)
            return cls._shared

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(child,), name="moesearch-reader", daemon=True)
        with sigint_held():  # a Ctrl-C while the reader imports is the parent's, not a traceback of the child
            proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.started += 1
        try:  # the time budget of a file starts once the reader is up (a Python start is ~0.5 s)
            if parent.poll(START_TIMEOUT) and parent.recv() == ("ready",):
                self.base_rss = rss_bytes(proc.pid) or 0
                return
        except (EOFError, OSError):
            pass
        how = self._stop()
        raise ExtractError(f"the reader process could not be started ({how or 'no answer'}); see the log")

    def _stop(self) -> str:
        """Kill the reader (if alive); how it ended, for the message."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return ""
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        if conn is not None:
            conn.close()
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(None)
                    self._proc.join(timeout=2)
                except OSError:
                    pass
            self._stop()

    def start(self) -> None:
        """Start the reader now if it is not running (``read`` would start it on first use).  From any thread the
        child is spawned holding Ctrl-C back from its first instruction (``children.sigint_held``), so a Ctrl-C
        while it imports is not its traceback."""
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._stop()
                self._start()

    def read(self, data: bytes, name: str, caps: FileCaps, plan: ChunkPlan, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> tuple[Extracted, list[Chunk]]:
        """Extract and chunk ``data`` in the reader; ``ExtractError`` (naming the limit) if the file is refused
        or runs over a limit, ``Cancelled`` if ``cancel`` is set meanwhile."""
        with self._lock:
            self.peak_rss = 0
            for attempt in (1, 2):  # a reader that died idle (killed from outside) is replaced once
                if self._proc is None or not self._proc.is_alive() or self._bloated(caps):
                    self._stop()
                    self._start()  # raises ExtractError if it cannot
                try:
                    self._conn.send((data, name, caps, plan))
                    break
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    self._stop()
                    if attempt == 2:
                        raise ExtractError("the reader process could not be started") from None
            return self._watch(caps, progress, cancel)

    def _bloated(self, caps: FileCaps) -> bool:
        """Earlier files left more than ``FRESH_SHARE`` of this file's memory limit in the idle reader (beyond what it
        held once started): that memory is not this file's, so a fresh reader reads it."""
        rss = rss_bytes(self._proc.pid)
        return rss is not None and rss - self.base_rss > FRESH_SHARE * caps.memory_mb * 2**20

    def _watch(self, caps: FileCaps, progress: Progress | None, cancel: threading.Event | None):
        deadline = time.monotonic() + caps.seconds
        limit = caps.memory_mb * 2**20
        pid = self._proc.pid
        while True:
            try:
                ready = self._conn.poll(POLL)
            except (EOFError, OSError):
                ready = True
            if ready:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    how = self._stop()
                    hint = (f"; most likely it needed more than {caps.memory_mb} MB of memory "
                            "(MOESEARCH_FILE_MEMORY_MB)") if how.startswith("SIG") else "; see the log"
                    raise ExtractError(f"the reader process died reading this file ({how}){hint}") from None
                kind = message[0]
                if kind == "progress":
                    if progress is not None:
                        progress(message[1], message[2])
                    continue
                if kind == "ok":
                    return message[1], message[2]
                if kind == "memory":
                    self._stop()
                    raise ExtractError(f"reading it needs more than the memory limit of {caps.memory_mb} MB "
                                       "(MOESEARCH_FILE_MEMORY_MB)")
                if kind == "bug":
                    raise ExtractError(f"could not read the file ({message[1]})")
                raise ExtractError(message[1])
            rss = rss_bytes(pid)
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
                if rss > limit:
                    self._stop()
                    raise ExtractError(f"reading it took more than the memory limit of {caps.memory_mb} MB "
                                       "(MOESEARCH_FILE_MEMORY_MB); stopped")
            if time.monotonic() > deadline:
                self._stop()
                raise ExtractError(f"reading it took longer than the time limit of {caps.seconds:g} s "
                                   "(MOESEARCH_FILE_SECONDS); stopped")
            if cancel is not None and cancel.is_set():
                self._stop()
                raise Cancelled("cancelled while reading this file")
