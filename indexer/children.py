"""What every child process of the indexer shares: started with Ctrl-C ignored, gone when its parent is, and (for
the jobs of a process that serves searches) at a lower priority than that process.

The indexer spawns two kinds of helper processes: embedding workers (``workers.py``) and the reader that extracts
files under limits (``sandbox.py``).  A terminal sends Ctrl-C to the whole process group, so a child would get it
too and print a ``KeyboardInterrupt`` traceback from wherever it was (often still importing); the parent is the
one that cancels the run and stops its children.  A child is therefore spawned inside ``sigint_held()``: SIGINT is
blocked in the spawning thread, a blocked signal mask survives ``fork`` and ``exec``, so the child holds any Ctrl-C
back from its first instruction until ``ignore_sigint()`` ignores it for good.  The parent's handler is never
changed: a Ctrl-C that arrives meanwhile goes to another of its threads, or waits until the block ends, and is
never lost (ignoring SIGINT in the parent for the spawn, as an earlier version did, dropped it).

Children are started with multiprocessing's ``spawn``, which re-runs the parent's main script in each child as
``__mp_main__``: a program that embeds the indexer builds itself only under ``if __name__ == "__main__"`` (the
app's Streamlit script does, ``app/main.py``), or each reader and worker builds it again.

A serving process (the app) lowers its job children's priority from outside, as soon as each exists
(``lower_priority``), so the searches it answers come first.  On Linux a niceness belongs to a thread: the child's
main thread is changed, and every thread it starts later (onnxruntime's pool) inherits it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)
NICEST = 19  # the lowest priority there is


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread while the block spawns children: they start with it blocked (held back until
    their ``ignore_sigint()``); for this process a Ctrl-C meanwhile is delivered, not dropped (see the module doc).
    Where there are no signal masks (Windows) the block runs unchanged."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing's resource tracker, started by the first spawn of a process, unblocks SIGINT in the spawning
    # thread once it is up: started first, outside the block, it cannot undo it
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if signal.SIGINT not in before:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C held meanwhile arrives now


def ignore_sigint() -> None:
    """In a child: Ctrl-C is the parent's to handle (it cancels the run, then stops us).  A Ctrl-C held back since
    the spawn (``sigint_held``) is dropped with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _exit_with(parent) -> None:
    parent.join()  # returns once the parent process is gone (its end of the spawn pipe closed)
    os._exit(1)


def watch_parent() -> None:
    """In a child: exit as soon as the parent process is gone.  A pool worker or a reader holds both ends of its
    pipe, so it never sees a killed parent by itself, and a SIGKILLed ingest would leave it running."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="moesearch-parent-watch", daemon=True).start()


def niceness(pid: int = 0) -> int | None:
    """The niceness of process ``pid`` (0: the calling thread on Linux); None where there is none (Windows) or
    the process is gone."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except (AttributeError, OSError):
        return None


def lower_priority(pid: int, nice: int) -> int | None:
    """Make process ``pid`` ``nice`` steps nicer than the calling thread (at most ``NICEST``); never raises its
    priority (that would need privileges).  Returns its niceness now (None: no such thing here, or it is gone)."""
    ours = niceness()
    if nice <= 0 or ours is None:
        return niceness(pid)
    target = min(NICEST, ours + nice)
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < target:
            os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError as exc:  # gone already, or not ours: it runs at its priority, nothing else changes
        log.warning("could not lower the priority of process %d: %s", pid, exc)
    return niceness(pid)
