"""indexer/children.py: a child spawned inside ``sigint_held()`` survives a Ctrl-C sent before it could set its
own handler, from the main thread or any other, and a Ctrl-C that reaches the parent meanwhile is not lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from indexer.children import sigint_held

ROOT = Path(__file__).resolve().parents[2]
# The child sleeps with Python's default SIGINT handling: a SIGINT that reaches it raises KeyboardInterrupt (exit 1).
CHILD = "import sys, time; print('up', flush=True); time.sleep(30)"


def _spawn_held() -> subprocess.Popen:
    with sigint_held():
        return subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("thread", ["main", "other"])
def test_child_spawned_inside_sigint_held_survives_ctrl_c(thread):
    if thread == "main":
        proc = _spawn_held()
    else:
        with ThreadPoolExecutor(1) as pool:
            proc = pool.submit(_spawn_held).result()
    try:
        assert proc.stdout.readline().strip() == "up"
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None, "the child took the Ctrl-C meant for its parent"
    finally:
        proc.kill()
        proc.wait(10)


def test_without_it_the_child_takes_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(10) != 0 and "KeyboardInterrupt" in proc.stderr.read()
    finally:
        proc.kill()


SPAWN = """
import multiprocessing, sys
sys.path[:0] = sys.argv[1:3]
from indexer.children import sigint_held
from indexer_procs import send_sigint_blocked

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):  # the first spawn starts multiprocessing's resource tracker, which unblocks SIGINT after it
        ours, theirs = ctx.Pipe()
        with sigint_held():
            child = ctx.Process(target=send_sigint_blocked, args=(theirs,))
            child.start()
        print(ours.recv(), flush=True)
        child.join()
"""


def test_a_multiprocessing_child_starts_with_ctrl_c_held_even_the_first_one(tmp_path):
    script = tmp_path / "spawn_two.py"
    script.write_text(SPAWN)
    proc = subprocess.run([sys.executable, str(script), str(ROOT), str(ROOT / "tests" / "indexer")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"], proc.stdout


def test_a_ctrl_c_during_the_spawn_reaches_the_parent_afterwards():
    got: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        with sigint_held():
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C lands while a child is being spawned
            time.sleep(0.05)  # another thread may take it meanwhile; the main thread holds it until the block ends
        for _ in range(100):  # the handler runs on the main thread's next bytecodes
            if got:
                break
            time.sleep(0.01)
        assert got == [signal.SIGINT], "the Ctrl-C was dropped"
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # unblocked again
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_child_drops_the_held_ctrl_c_when_it_ignores_it():
    code = ("import os, signal, sys, time; sys.path.insert(0, sys.argv[1]); from indexer.children import "
            "ignore_sigint; os.kill(os.getpid(), signal.SIGINT); time.sleep(0.05); ignore_sigint(); "
            "print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()), "
            "signal.getsignal(signal.SIGINT) == signal.SIG_IGN, flush=True)")
    with sigint_held():
        proc = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"], proc.stdout  # not blocked any more, ignored


class _Reader:
    def __init__(self):
        self.started_on: list[str] = []

    def start(self):
        self.started_on.append(threading.current_thread().name)


class _Loop:
    def __init__(self):
        self.reader = _Reader()
        self.prepared_on: list[str] = []

    def prepare(self, source, index):
        self.prepared_on.append(threading.current_thread().name)
        return None


def test_read_ahead_starts_the_reader_on_the_calling_thread():
    from indexer.ingest import ReadAhead

    loop = _Loop()
    feed = ReadAhead(loop, ["a.txt", "b.txt"])
    try:
        assert loop.reader.started_on == [threading.current_thread().name]  # before any read
        feed.take(0)
        assert loop.prepared_on and all(n.startswith("moesearch-read") for n in loop.prepared_on)
    finally:
        feed.close()
    empty = ReadAhead(_Loop(), [])
    empty.close()
    assert empty.loop.reader.started_on == []  # nothing to read: no reader process


def test_reader_start_is_idempotent_and_spawns_one_process():
    from indexer.sandbox import Reader

    reader = Reader()
    try:
        reader.start()
        pid = reader.pid
        reader.start()
        assert pid is not None and reader.pid == pid and reader.started == 1
    finally:
        reader.close()
