"""A real ingest process is SIGKILLed in the middle of a document; the store shows only complete documents,
and a restarted ingest finishes the work with no duplicates (compared against a clean run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from indexer_procs import children, gone
from indexer_testfiles import sentences

from indexer.pipeline import Pipeline
from indexer.schema import VISIBLE
from indexer.store import Match, scroll_all

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent("""
    import sys, time
    from indexer.pipeline import Pipeline
    from indexer.settings import IndexerSettings

    data_dir, model_dir, docs, workers = sys.argv[1:5]
    settings = IndexerSettings(data_dir=data_dir, model_dir=model_dir, device="cpu", chunk_tokens=48,
                               chunk_overlap=8, batch_size=2, hnsw_threshold=0)

    def progress(event):
        if event.stage == "embed":
            print(f"EMBED {event.files_done} {event.chunks_done} {event.chunks_total}", flush=True)
            time.sleep(0.02)

    with Pipeline(settings) as p:
        report = p.ingest([docs], progress=progress, workers=int(workers))
    print("DONE", report.ok, report.duplicates, flush=True)
""")


def _run(args, kill_at=None):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed = False
    proc.workers = []
    deadline = time.time() + 120
    for line in proc.stdout:
        if time.time() > deadline:
            break
        parts = line.split()
        if kill_at and parts[0] == "EMBED" and int(parts[1]) == kill_at and 0 < int(parts[2]) < int(parts[3]):
            proc.workers = children(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)  # mid-document: some chunks written, no manifest yet
            killed = True
            break
        if parts[0] == "DONE":
            break
    proc.wait(timeout=60)
    return proc, killed, line


def _state(settings, embedder):
    with Pipeline(settings, embedder=embedder) as p:
        col = p._active.collection
        docs = {d.doc_id: d for d in p.documents()}
        visible = {}
        for r in scroll_all(col, VISIBLE):
            visible.setdefault(r.payload["doc_id"], []).append(r.id)
        points = sorted(r.id for r in scroll_all(col, [Match("kind", ("chunk",))]))
        return docs, visible, points, p.stats()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_ingest_resumes_without_duplicates(make_settings, tiny_embedder, tiny_model_dir, tmp_path, workers):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"doc{i}.txt").write_text(sentences(40, i, f"topic{i}"))
    settings = make_settings(batch_size=2)

    proc, killed, last = _run([settings.data_dir, tiny_model_dir, docs, workers], kill_at=2)
    assert killed, f"never reached the third document: {last!r} {proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    if workers > 1 and Path("/proc").is_dir():  # the embedding workers do not outlive a killed ingest
        assert proc.workers, "no worker processes were running"
        deadline = time.time() + 30
        while not all(map(gone, proc.workers)) and time.time() < deadline:
            time.sleep(0.2)
        assert all(map(gone, proc.workers)), f"worker processes left running: {proc.workers}"

    listed, visible, points, stats = _state(settings, tiny_embedder)
    assert len(listed) == 2  # files 0 and 1 finished; file 2 was cut mid-way
    assert stats.incomplete_chunks > 0  # its partial chunks are on disk...
    assert set(visible) == set(listed)  # ...but only complete documents are visible
    for doc_id, doc in listed.items():
        assert len(visible[doc_id]) == doc.chunks

    proc, killed, last = _run([settings.data_dir, tiny_model_dir, docs, workers])
    assert proc.returncode == 0 and last.split()[:3] == ["DONE", "3", "2"], proc.stderr.read()[-2000:]

    reference = make_settings(data_dir=settings.data_dir / "clean-reference")
    with Pipeline(reference, embedder=tiny_embedder) as clean:
        clean.ingest([docs])
    want_docs, want_visible, want_points, want_stats = _state(reference, tiny_embedder)
    got_docs, got_visible, got_points, got_stats = _state(settings, tiny_embedder)
    assert set(got_docs) == set(want_docs) and len(got_docs) == 5
    assert {d: doc.chunks for d, doc in got_docs.items()} == {d: doc.chunks for d, doc in want_docs.items()}
    assert got_points == want_points  # same deterministic ids, nothing extra, nothing missing
    assert got_stats.chunks == want_stats.chunks and got_stats.incomplete_chunks == 0
