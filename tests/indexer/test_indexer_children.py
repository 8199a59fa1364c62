"""indexer/children.py: a child spawned inside ``sigint_ignored()`` survives a Ctrl-C sent before it could set its
own handler.  Only the main thread can do that, so the one-process ingest starts its reader there, before its
read-ahead thread reads the first file (``Reader.start``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from indexer.children import sigint_ignored

# The child sleeps with Python's default SIGINT handling: a SIGINT that reaches it raises KeyboardInterrupt (exit 1).
CHILD = "import sys, time; print('up', flush=True); time.sleep(30)"


def test_child_spawned_inside_sigint_ignored_survives_ctrl_c():
    with sigint_ignored():
        proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
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


def test_the_main_thread_gets_its_handler_back():
    before = signal.getsignal(signal.SIGINT)
    with sigint_ignored():
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == before


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
