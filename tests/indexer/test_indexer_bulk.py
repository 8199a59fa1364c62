"""Bulk ingest with embedding worker processes: the same points as the one-process path, and the same
guarantees (per-file errors, resumable, nothing visible from a failed file, a dead worker costs no other file)."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Future

import numpy as np
import pytest
from indexer_testfiles import make_pdf, sentences

from indexer.bulk import QUEUED_PER_WORKER, PoolFeed
from indexer.cli import run
from indexer.pipeline import IndexerError, Pipeline
from indexer.schema import VISIBLE, chunk_id
from indexer.store import Match, scroll_all
from indexer.workers import EmbedPool, WorkerSpec, threads_per_worker

MARKER = "sabotage"


def die(texts, batch_size):  # runs in a worker process (pickled by reference): kills it
    os._exit(3)


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "glaciers.txt").write_text(sentences(40, 1, "glacier"))
    (docs / "sub" / "solar.md").write_text("# Solar\n\n" + sentences(30, 2, "photovoltaic"))
    (docs / "report.pdf").write_bytes(make_pdf([sentences(15, 3, "enzyme"), sentences(15, 4, "kinase")]))
    (docs / "page.html").write_text(f"<html><body><p>{sentences(10, 6, 'volcano')}</p></body></html>")
    (docs / "copy.txt").write_text((docs / "glaciers.txt").read_text())  # same bytes: a duplicate
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 50)
    for i in range(6):  # small files: one batch each
        (docs / f"note{i}.txt").write_text(sentences(3, 10 + i, "otter"))
    return docs


def _ingest(settings, embedder, paths, workers, monkeypatch=None):
    """Ingest; returns the report, the chunk points written (in order), the visible and all chunk ids, the doc ids
    and the top dense hits (id, score) of one query."""
    written = []
    with Pipeline(settings, embedder=embedder) as p:
        col = p._active.collection
        real = col.upsert

        def upsert(points):
            written.extend(pt for pt in points if pt.payload.get("kind") == "chunk")
            return real(points)

        col.upsert = upsert
        report = p.ingest(paths, workers=workers)
        visible = sorted(r.id for r in scroll_all(col, VISIBLE))
        all_chunks = sorted(r.id for r in scroll_all(col, [Match("kind", ("chunk",))]))
        docs = sorted(d.doc_id for d in p.documents())
        hits = [(h.id, h.score) for h in p.search("glacier enzyme volcano", k=10, mode="dense")]
    return report, written, visible, all_chunks, docs, hits


def _summary(report):
    return [(f.name, f.status, f.pages, f.chunks, f.doc_id) for f in report.files]


def test_two_workers_store_the_same_points_as_one(make_settings, tiny_embedder, tmp_path, monkeypatch, corpus):
    one = _ingest(make_settings(), tiny_embedder, [corpus], workers=1)
    with monkeypatch.context() as m:  # with workers, this process embeds no document at all
        m.setattr(tiny_embedder, "embed_documents", lambda *a, **k: pytest.fail("embedded in the main process"))
        two = _ingest(make_settings(data_dir=tmp_path / "two"), tiny_embedder, [corpus], workers=2)
    (r1, w1, v1, c1, d1, h1), (r2, w2, v2, c2, d2, h2) = one, two
    assert _summary(r1) == _summary(r2)
    statuses = {f.name: f.status for f in r2.files}
    assert statuses["glaciers.txt"] == "duplicate" and statuses["broken.pdf"] == "failed"
    assert statuses["tool.exe"] == "skipped" and r2.ok == 10 and r2.store_error is None
    assert v1 == v2 == c1 == c2 and d1 == d2 and len(v2) == r2.chunks > 10
    assert sorted(pt.id for pt in w1) == sorted(pt.id for pt in w2) == v2  # each chunk written once, no more
    by_id = {pt.id: pt for pt in w2}
    for a in w1:
        b = by_id[a.id]
        assert {k: v for k, v in a.payload.items() if k != "ingested_at"} == \
               {k: v for k, v in b.payload.items() if k != "ingested_at"}
        assert a.dense.dtype == b.dense.dtype == np.float32
        np.testing.assert_allclose(a.dense, b.dense, rtol=0, atol=1e-5)
        assert a.sparse == b.sparse
    assert [h for h, _ in h1] == [h for h, _ in h2]
    np.testing.assert_allclose([s for _, s in h1], [s for _, s in h2], atol=1e-5)


def test_bulk_reingest_is_a_noop_and_a_failed_file_resumes(make_settings, tiny_embedder, tmp_path, monkeypatch,
                                                         corpus):
    (corpus / "late.txt").write_text(sentences(30, 7, "heron") + f" The {MARKER} is at the very end.")
    real_submit = EmbedPool.submit

    def submit(self, texts, batch_size):
        if any(MARKER in t for t in texts):  # the last batch of late.txt fails; its first batches were written
            failed = Future()
            failed.set_exception(RuntimeError("embedding failed"))
            return failed
        return real_submit(self, texts, batch_size)

    settings = make_settings()
    monkeypatch.setattr(EmbedPool, "submit", submit)
    report, written, visible, all_chunks, docs, _ = _ingest(settings, tiny_embedder, [corpus], workers=2)
    late = next(f for f in report.files if f.name == "late.txt")
    assert late.status == "failed" and "embedding failed" in late.reason
    assert report.ok == 10 and report.store_error is None
    with Pipeline(settings, embedder=tiny_embedder) as p:
        stats = p.stats()
        assert stats.incomplete_chunks > 0  # written batches of late.txt: hidden, no manifest record
        assert p.search("heron", mode="keyword") == []
        assert "late.txt" not in {d.source for d in p.documents()}

    monkeypatch.setattr(EmbedPool, "submit", real_submit)
    held, real_fill = [], PoolFeed._fill

    def fill(self):
        real_fill(self)
        held.append(len(self.pending))

    monkeypatch.setattr(PoolFeed, "_fill", fill)
    again, _, visible2, all2, docs2, _ = _ingest(settings, tiny_embedder, [corpus], workers=2)
    assert 0 < max(held) <= QUEUED_PER_WORKER * 2 + 1  # unchanged files queue no batch, yet few are held at once
    statuses = {f.name: f.status for f in again.files}
    assert statuses.pop("late.txt") == "ok" and statuses.pop("broken.pdf") == "failed"
    assert set(statuses.values()) <= {"duplicate", "skipped"}
    late = next(f for f in again.files if f.name == "late.txt")
    assert visible2 == all2 and set(visible) < set(visible2)  # the leftovers were replaced, no duplicates
    assert {chunk_id(late.doc_id, i) for i in range(late.chunks)} == set(visible2) - set(visible)
    clean = _ingest(make_settings(data_dir=tmp_path / "clean"), tiny_embedder, [corpus], workers=1)
    assert clean[2] == visible2 and clean[4] == docs2


def test_a_dead_worker_costs_only_the_file_that_kills_it(make_settings, tiny_embedder, monkeypatch, corpus, caplog):
    (corpus / "deadly.txt").write_text(f"The {MARKER} text. " + sentences(5, 8, "wren"))
    real_submit = EmbedPool.submit

    def submit(self, texts, batch_size):
        if any(MARKER in t for t in texts):
            return self._executor.submit(die, texts, batch_size)
        return real_submit(self, texts, batch_size)

    monkeypatch.setattr(EmbedPool, "submit", submit)
    report, _, visible, all_chunks, _, _ = _ingest(make_settings(), tiny_embedder, [corpus], workers=2)
    statuses = {f.name: f.status for f in report.files}
    deadly = next(f for f in report.files if f.name == "deadly.txt")
    assert deadly.status == "failed" and "worker died" in deadly.reason
    assert report.ok == 10 and statuses["broken.pdf"] == "failed" and report.failed == 2
    assert visible == all_chunks  # nothing of the deadly file is stored
    restarts = [r for r in caplog.records if "an embedding worker died; restarting" in r.getMessage()]
    assert 2 <= len(restarts) < 5  # it died with others queued, then alone; never fell back to this process


def test_worker_spec_matches_the_main_embedder(tiny_embedder):
    spec = WorkerSpec.of(tiny_embedder, 2)
    assert spec.variant == "int8" and spec.device == "cpu" and spec.dim == tiny_embedder.dim
    assert spec.max_length == tiny_embedder.max_length and spec.threads == threads_per_worker(2)
    assert threads_per_worker(2, cores=8) == 4 and threads_per_worker(3, cores=2) == 1
    loaded = spec.load()
    assert loaded.model_file == tiny_embedder.model_file
    assert loaded.spinning and not tiny_embedder.spinning  # a worker only embeds batches; the serving one searches
    texts = ["a chunk about glaciers", "another, longer chunk about the kinase pathway and enzymes"]
    np.testing.assert_allclose(loaded.embed_documents(texts), tiny_embedder.embed_documents(texts), atol=1e-5)
    with pytest.raises(TypeError, match="embedder.runtime.Embedder"):
        WorkerSpec.of(object(), 2)
    with pytest.raises(ValueError):
        threads_per_worker(0)


def test_workers_that_cannot_start_are_an_error_not_a_silent_fallback(make_settings, tiny_embedder, monkeypatch,
                                                                     corpus):
    real_of = WorkerSpec.of
    monkeypatch.setattr(WorkerSpec, "of", classmethod(
        lambda cls, embedder, n: dataclasses.replace(real_of(embedder, n), model_dir="/nonexistent/model")))
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        with pytest.raises(IndexerError, match="embedding workers could not start"):
            p.ingest([corpus], workers=2)
        assert p.stats().chunks == 0 and p.stats().incomplete_chunks == 0
        with pytest.raises(ValueError, match="workers must be >= 1"):
            p.ingest([corpus], workers=0)


def test_cli_ingest_workers(monkeypatch, data_dir, tiny_model_dir, corpus, capsys):
    for key, value in {"MOESEARCH_DATA_DIR": str(data_dir), "MOESEARCH_MODEL": str(tiny_model_dir),
                       "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48",
                       "MOESEARCH_CHUNK_OVERLAP": "8"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    assert run(["ingest", str(corpus / "sub"), str(corpus / "report.pdf"), "--workers", "2"]) == 0
    assert "2 ok, 0 unchanged/duplicate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        run(["ingest", str(corpus), "--workers", "0"])
    assert exc.value.code == 2 and "must be >= 1" in capsys.readouterr().err
