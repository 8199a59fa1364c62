"""Jobs of a serving process (``background.py``): embedded in a nicer worker process with a bounded thread budget,
the same points as the one-process path, the pool kept warm between jobs, and the serving model never embedding a
document.  Niceness is read from /proc (per thread on Linux), so those checks need Linux."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from indexer_testfiles import make_pdf, sentences

from indexer.background import IN_PROCESS, JobEmbedding, WarmPool, job_threads
from indexer.children import NICEST, lower_priority, niceness
from indexer.pipeline import Pipeline
from indexer.schema import VISIBLE
from indexer.store import scroll_all
from indexer.workers import EmbedPool, WorkerSpec

LINUX = Path("/proc/self/task").is_dir()
WAIT = 120  # seconds: a bound for "did not hang", not a speed claim


def thread_niceness(pid: int) -> list[int]:
    """The niceness of every thread of process ``pid`` (field 19 of /proc/PID/task/TID/stat)."""
    out = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            out.append(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return out


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "glaciers.txt").write_text(sentences(40, 1, "glacier"))
    (docs / "report.pdf").write_bytes(make_pdf([sentences(15, 3, "enzyme"), sentences(15, 4, "kinase")]))
    (docs / "copy.txt").write_text((docs / "glaciers.txt").read_text())  # same bytes: a duplicate
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")  # fails alone
    for i in range(3):
        (docs / f"note{i}.txt").write_text(sentences(3, 10 + i, "otter"))
    return docs


def _ingest(p: Pipeline, paths, **options):
    """The report and the chunk points written ({id: (payload without the time, dense vector)})."""
    written = {}
    col = p._active.collection
    real = col.upsert

    def upsert(points):
        for pt in points:
            if pt.payload.get("kind") == "chunk":
                written[pt.id] = ({k: v for k, v in pt.payload.items() if k != "ingested_at"}, pt.dense)
        return real(points)

    col.upsert = upsert
    try:
        return p.ingest(paths, **options), written
    finally:
        col.upsert = real


def _summary(report) -> list[tuple]:
    return [(f.name, f.status, f.reason, f.pages, f.chunks, f.doc_id) for f in report.files]


def test_job_threads_leave_a_core_to_queries_where_that_keeps_most_of_the_ingest():
    assert job_threads(0, cores=16) == 15 and job_threads(0, cores=5) == 4  # >= 0.8 of the embedding kept
    assert job_threads(0, cores=4) == 4 and job_threads(0, cores=2) == 2 and job_threads(0, cores=1) == 1
    assert job_threads(3, cores=16) == 3 and job_threads(1, cores=2) == 1  # the setting wins


def test_the_job_spec_serves_the_serving_models_file_nicer_and_without_spinning(tiny_embedder):
    policy = JobEmbedding(nice=7, threads=0)
    spec = policy.spec(tiny_embedder)
    assert spec == dataclasses.replace(WorkerSpec.of(tiny_embedder, 1), threads=job_threads(0), nice=7,
                                       spinning=False)
    loaded = spec.load()
    assert loaded.model_file == tiny_embedder.model_file and loaded.dim == tiny_embedder.dim
    assert not loaded.spinning
    assert JobEmbedding(threads=6).spec(tiny_embedder, workers=2).threads == 3


def test_the_worker_serves_the_file_the_cpu_rule_chose(tiny_model_dir):
    from embedder.runtime import Embedder

    serving = Embedder(tiny_model_dir, device="cpu", cpu_variant="fp32")  # as if prepare had measured fp32 faster
    assert serving.model_file.name == "model.gather-fp32.onnx" and serving.cpu_choice.variant == "fp32"
    loaded = JobEmbedding().spec(serving).load()
    assert loaded.model_file == serving.model_file
    texts = ["a chunk about glaciers", "the kinase pathway"]
    np.testing.assert_allclose(loaded.embed_documents(texts), serving.embed_documents(texts), atol=1e-5)


@pytest.mark.skipif(not LINUX, reason="niceness per thread is read from /proc")
def test_lower_priority_only_ever_lowers_it():
    ours = niceness()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert lower_priority(proc.pid, 0) == ours  # nothing asked: unchanged
        assert lower_priority(proc.pid, 3) == min(NICEST, ours + 3)
        assert lower_priority(proc.pid, 1) == min(NICEST, ours + 3)  # never raised again
        assert lower_priority(proc.pid, 50) == NICEST
    finally:
        proc.stdin.close()
        proc.wait(WAIT)
    assert lower_priority(proc.pid, 5) is None  # gone: no error


@pytest.mark.skipif(not LINUX, reason="niceness per thread is read from /proc")
def test_a_background_ingest_embeds_in_a_nicer_process_with_the_same_points(make_settings, tiny_embedder, tmp_path,
                                                                           monkeypatch, corpus):
    with Pipeline(make_settings(data_dir=tmp_path / "one"), embedder=tiny_embedder) as p:
        one, want = _ingest(p, [corpus])
    seen: dict[str, object] = {}
    real_submit = EmbedPool.submit

    def submit(self, texts, batch_size):  # the app process hands the batch over; the worker embeds it
        seen.setdefault("threads", {pid: thread_niceness(pid) for pid in self.pids})
        seen["pool"] = self
        return real_submit(self, texts, batch_size)

    with monkeypatch.context() as m:
        m.setattr(tiny_embedder, "embed_documents", lambda *a, **k: pytest.fail("embedded in the serving process"))
        m.setattr(EmbedPool, "submit", submit)
        with Pipeline(make_settings(data_dir=tmp_path / "job", ingest_nice=5), embedder=tiny_embedder) as p:
            job, got = _ingest(p, [corpus], background=True)
            assert sorted(r.id for r in scroll_all(p._active.collection, VISIBLE)) == sorted(got)
            assert p.search("glacier", k=3, mode="dense")  # the query is embedded here, by the serving model
            kept = p._background.pools.kept
            assert kept is seen["pool"]  # kept for the next job...
        assert p._background.pools.kept is None  # ...until the pipeline closes
    assert _summary(one) == _summary(job) and job.failed == 1 and job.duplicates == 1
    assert got.keys() == want.keys() and len(got) == job.chunks
    for point_id, (payload, dense) in want.items():
        assert got[point_id][0] == payload
        np.testing.assert_allclose(got[point_id][1], dense, rtol=0, atol=1e-5)
    ours = niceness()
    pool = seen["pool"]
    assert pool.spec.nice == 5 and not pool.spec.spinning and pool.spec.threads == job_threads(0)
    assert pool.pids and os.getpid() not in pool.pids
    for pid, nice in seen["threads"].items():  # every thread of the worker, onnxruntime's included
        assert nice and all(n == min(NICEST, ours + 5) for n in nice), (pid, nice)


def test_in_process_setting_keeps_the_old_path(make_settings, tiny_embedder, monkeypatch, corpus):
    monkeypatch.setattr(EmbedPool, "__init__", lambda *a, **k: pytest.fail("a worker was started"))
    with Pipeline(make_settings(ingest_embedding=IN_PROCESS), embedder=tiny_embedder) as p:
        report = p.ingest([corpus], background=True)
    assert report.ok == 5 and report.failed == 1


def test_warm_pool_is_reused_replaced_and_expires(tiny_embedder):
    spec = JobEmbedding(nice=1, threads=1).spec(tiny_embedder)
    pools = WarmPool(idle_s=3600)
    try:
        first = pools.take(spec, 1)
        pools.give(first)
        assert pools.kept is first
        again = pools.take(spec, 1)
        assert again is first and again.pids == first.pids and pools.kept is None
        first.restarts = 3
        pools.give(again)
        assert pools.take(spec, 1).restarts == 0  # the restart budget is per job
        pools.give(first)
        other = pools.take(dataclasses.replace(spec, threads=2), 1)  # another spec (a reindex's model): a new pool
        assert other is not first
        with pytest.raises(RuntimeError):  # the kept one was closed
            first.submit(["text"], 1)
        pools.idle_s = 0.01
        pools.give(other)
        timer = pools._timer
        timer.join(WAIT)
        assert pools.kept is None
        with pytest.raises(RuntimeError):
            other.submit(["text"], 1)
    finally:
        pools.close()
    pools.give(None)  # a job that gave its pool up gives nothing back
    closed = WarmPool(idle_s=0)
    pool = closed.take(spec, 1)
    closed.give(pool)  # idle_s 0: closed with the job
    assert closed.kept is None
    with pytest.raises(RuntimeError):
        pool.submit(["text"], 1)


def test_a_background_reindex_embeds_in_the_worker(make_settings, tiny_embedder, monkeypatch, corpus):
    settings = make_settings()
    with Pipeline(settings, embedder=tiny_embedder) as p:
        p.ingest([corpus])
        before = {r.id for r in scroll_all(p._active.collection, VISIBLE)}
        with monkeypatch.context() as m:
            m.setattr(tiny_embedder, "embed_documents", lambda *a, **k: pytest.fail("embedded in the serving process"))
            report = p.reindex(force=True, background=True)
        assert report.ok == 5 and {r.id for r in scroll_all(p._active.collection, VISIBLE)} == before
