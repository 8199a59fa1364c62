"""A process syncing a folder is SIGKILLed in the middle of the sync; a restarted sync loses nothing and indexes
nothing twice: every file is one document at its path, the chunk counts add up, no half-written chunks remain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from indexer_procs import children, gone

from embedder.settings import sha256
from indexer import IndexerSettings, Pipeline, Syncer
from indexer.sync import BATCH_FILES
from indexer.sync_state import SyncState

ROOT = Path(__file__).resolve().parents[2]
FILES = 4 * BATCH_FILES  # enough that the first batches are committed well before the last
DEADLINE_S = 120.0
CHILD = textwrap.dedent("""
    import sys
    from indexer import IndexerSettings, Pipeline, Syncer

    settings = IndexerSettings.from_env()
    with Pipeline(settings) as pipeline:
        syncer = Syncer(pipeline, settings)
        syncer.add(sys.argv[1])
        print("REPORT", syncer.sync(sys.argv[1]), flush=True)
""")


def test_sigkill_during_a_sync_then_restart_loses_nothing_and_doubles_nothing(data_dir, tiny_model_dir,
                                                                               tiny_embedder, tmp_path):
    folder = tmp_path / "roots" / "synced"
    folder.mkdir(parents=True)
    for i in range(FILES):
        (folder / f"note-{i:03d}.txt").write_text(" ".join(f"note {i} line {j} about topic {i % 7}." for j in
                                                           range(40)))
    env = {**os.environ, "MOESEARCH_DATA_DIR": str(data_dir), "MOESEARCH_MODEL": str(tiny_model_dir),
           "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
           "MOESEARCH_BATCH_SIZE": "4", "MOESEARCH_HNSW_THRESHOLD": "0", "MOESEARCH_INGEST_ROOTS": str(folder.parent),
           "MOESEARCH_SYNC_WATCH": "false", "MOESEARCH_SYNC_RESCAN_S": "0", "PYTHONPATH": str(ROOT)}
    settings = IndexerSettings.from_env(env)
    state = SyncState(data_dir)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end, indexed = time.monotonic() + DEADLINE_S, 0
        while time.monotonic() < end and proc.poll() is None:
            described = state.describe() if state.path.exists() else []
            indexed = described[0].indexed if described else 0
            if indexed >= BATCH_FILES:
                break
            time.sleep(0.02)  # polling another process's committed state
        assert proc.poll() is None, f"the sync ended before the kill: {proc.communicate()}"
        assert BATCH_FILES <= indexed < FILES, indexed
        readers = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in readers:  # the killed process's file readers: gone before the index is opened again (a forked
        try:             # reader may hold the data folder's lock until it exits)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 30
    while any(not gone(pid) for pid in readers) and time.monotonic() < end:
        time.sleep(0.02)  # polling /proc: they are not this process's children, so there is nothing to wait on

    with Pipeline(settings, embedder=tiny_embedder) as pipeline:
        report = Syncer(pipeline, settings).sync(str(folder))
        assert report.error is None and report.failed == 0
        docs = pipeline.documents()
        paths = [d.path for d in docs]
        assert sorted(paths) == sorted(str(p) for p in folder.iterdir()), "lost or extra documents"
        assert len(set(paths)) == len(paths) == FILES, "a file indexed twice"
        assert all(d.doc_id == sha256(Path(d.path).read_bytes()) for d in docs)
        stats = pipeline.stats()
        assert stats.chunks == sum(d.chunks for d in docs) and stats.incomplete_chunks == 0
        assert state.describe()[0].indexed == FILES
        assert Syncer(pipeline, settings).sync(str(folder)).ingested == 0  # and a further sync has nothing to do
