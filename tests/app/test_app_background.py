"""The app's ingest jobs embed outside the process that answers searches (issue 24 item 2): in a worker process
that runs nicer than the app, while the app's own model embeds only queries; cancel still stops a job, a bad file
still fails alone, and the per-file report is the one the in-process path gives.  Events hold a job where a check
needs it; nothing here sleeps or times anything."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.service import Service
from indexer import IndexerSettings, Source
from indexer.children import niceness
from indexer.sandbox import Reader
from indexer.workers import EmbedPool

WAIT = 60  # seconds: a bound for "did not hang", not a speed claim
MARKER = "sabotage"
LINUX = Path("/proc/self/task").is_dir()
WORDS = ("heron reed marsh river otter willow kingfisher dragonfly lily sedge bank current pool ripple mud stone "
         "alder trout mayfly bittern").split()


def text(i: int, words: int) -> bytes:
    return " ".join(f"{WORDS[(i * 7 + j) % len(WORDS)]}{'' if j % 5 else '.'}" for j in range(words)).encode()


def fail_embed(texts, batch_size):  # runs in the worker process (pickled by reference)
    raise RuntimeError("embedding failed in the worker")


def thread_niceness(pid: int) -> list[int]:
    out = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            out.append(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.fixture
def service(app_env):
    s = Service(IndexerSettings.from_env())
    yield s
    s.close()


def hold_at(service: Service, monkeypatch, when) -> tuple[threading.Event, threading.Event]:
    """Hold the service's next ingest in its progress callback at the first event ``when(event)`` accepts:
    returns (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    real = service.pipeline.ingest

    def ingest(items, progress=None, **options):
        def hook(event):
            progress(event)
            if not reached.is_set() and when(event):
                reached.set()
                assert release.wait(WAIT)

        return real(items, progress=hook, **options)

    monkeypatch.setattr(service.pipeline, "ingest", ingest)
    return reached, release


@pytest.mark.skipif(not LINUX, reason="niceness per thread is read from /proc")
def test_the_ingest_job_embeds_in_a_nicer_process_and_searches_use_the_apps_model(service, monkeypatch):
    service.ingest([Source.upload("first.txt", text(0, 300))], "first")
    app_model = service.pipeline.embedder
    queries: list[str] = []
    real_query = app_model.embed_query
    monkeypatch.setattr(app_model, "embed_documents", lambda *a, **k: pytest.fail("embedded in the app's process"))
    monkeypatch.setattr(app_model, "embed_query", lambda q, *a, **k: (queries.append(q), real_query(q, *a, **k))[1])
    pools: list[EmbedPool] = []
    real_submit = EmbedPool.submit

    def submit(self, texts, batch_size):
        pools.append(self)
        return real_submit(self, texts, batch_size)

    monkeypatch.setattr(EmbedPool, "submit", submit)
    reached, release = hold_at(service, monkeypatch, lambda e: e.stage == "embed" and e.chunks_done)
    job = service.start_ingest([Source.upload(f"heron-{i}.txt", text(i, 400)) for i in range(3)], "herons")
    try:
        assert reached.wait(WAIT)  # a batch came back from the worker and was written
        pool = pools[-1]
        ours = niceness()
        assert pool.pids and os.getpid() not in pool.pids
        for pid in pool.pids:  # the worker and every thread of it (onnxruntime's) run nicer than the app
            nice = thread_niceness(pid)
            assert nice and all(n > ours for n in nice), (pid, nice, ours)
        assert niceness(Reader.shared().pid) > ours  # the reader of the job's files too
        hits = service.pipeline.search("kingfisher marsh", k=5, mode="hybrid")  # meanwhile, the app's model serves it
        assert hits and queries == ["kingfisher marsh"]
    finally:
        release.set()
    assert job.wait(WAIT) and job.error is None
    assert job.result.ok == 3 and service.pipeline.stats().documents == 4
    kept = service.pipeline._background.pools.kept
    assert kept is pool  # kept loaded for the next job
    assert service.ingest([Source.upload("late.txt", text(9, 200))], "late").ok == 1
    assert pools[-1] is pool  # the next job used it: no second start


def test_cancel_stops_a_background_ingest_and_the_worker_serves_the_next_job(service, monkeypatch):
    files = [Source.upload(f"reeds-{i}.txt", text(i, 600)) for i in range(4)]
    reached, release = hold_at(service, monkeypatch, lambda e: e.stage == "embed" and e.files_done == 1
                               and 0 < e.chunks_done < e.chunks_total)
    job = service.start_ingest(files, "reeds")
    try:
        assert reached.wait(WAIT)  # the second file is half written
        assert service.cancel()
    finally:
        release.set()
    assert job.wait(WAIT) and job.error is None
    statuses = [(f.name, f.status) for f in job.result.files]
    assert statuses == [("reeds-0.txt", "ok"), ("reeds-1.txt", "skipped"), ("reeds-2.txt", "skipped"),
                        ("reeds-3.txt", "skipped")]
    assert all("cancelled" in f.reason for f in job.result.files[1:])
    stats = service.pipeline.stats()
    assert stats.documents == 1 and stats.incomplete_chunks == 0  # the file in progress was rolled back
    assert service.last_report["label"] == "reeds" and service.last_report["ok"] == 1
    monkeypatch.undo()
    again = service.ingest(files, "reeds again")  # the kept worker embeds the rest
    assert [f.status for f in again.files] == ["duplicate", "ok", "ok", "ok"]


def test_a_bad_file_fails_alone_with_the_report_the_in_process_path_gives(app_env, monkeypatch):
    uploads = [("good.txt", text(1, 300)), ("broken.pdf", b"%PDF-1.7\n garbage"),
               ("bad-vectors.txt", text(2, 300) + f" the {MARKER} word".encode()), ("tool.exe", b"MZ\x90\x00" * 20),
               ("also-good.txt", text(3, 300))]
    real_submit = EmbedPool.submit

    def submit(self, texts, batch_size):  # a file whose embedding fails in the worker
        if any(MARKER in t for t in texts):
            return self._executor.submit(fail_embed, texts, batch_size)
        return real_submit(self, texts, batch_size)

    monkeypatch.setattr(EmbedPool, "submit", submit)
    reports, hidden = {}, {}
    for where in ("worker", "in-process"):
        service = Service(IndexerSettings.from_env(data_dir=app_env / where, ingest_embedding=where))
        try:
            if where == "in-process":
                model = service.pipeline.embedder
                real = model.embed_documents

                def embed_documents(texts, *a, real=real, **k):
                    if any(MARKER in t for t in texts):
                        raise RuntimeError("embedding failed in the worker")
                    return real(texts, *a, **k)

                monkeypatch.setattr(model, "embed_documents", embed_documents)
            reports[where] = report = service.ingest_uploads(uploads)
            stats = service.pipeline.stats()  # only the good files are visible (the failed one's batches stay hidden)
            assert stats.documents == 2 and stats.chunks == sum(f.chunks for f in report.files if f.status == "ok")
            assert service.last_report["failed"] == report.failed == 3
            hidden[where] = stats.incomplete_chunks
        finally:
            service.close()
    worker, in_process = reports["worker"], reports["in-process"]
    assert [(f.name, f.status) for f in worker.files] == [("good.txt", "ok"), ("broken.pdf", "failed"),
                                                          ("bad-vectors.txt", "failed"), ("tool.exe", "failed"),
                                                          ("also-good.txt", "ok")]
    assert "embedding failed in the worker" in worker.files[2].reason and hidden["worker"] == hidden["in-process"]
    assert ([(f.name, f.status, f.reason, f.pages, f.chunks, f.doc_id) for f in worker.files]
            == [(f.name, f.status, f.reason, f.pages, f.chunks, f.doc_id) for f in in_process.files])
