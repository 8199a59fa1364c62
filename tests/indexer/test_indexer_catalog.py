"""The read side the app uses: paged listings kept between changes, facets, records by id, lazy originals, and
the ingest loop asking the store for a document record once per file."""

from __future__ import annotations

import pytest
from indexer_testfiles import sentences

from indexer import IndexerError, Source
from indexer.schema import record_id


def _files(folder, n):
    out = []
    for i in range(n):
        path = folder / f"f{i}.{'md' if i % 2 else 'txt'}"
        path.write_text(sentences(4, i, f"lemur{i}"))
        out.append(path)
    return out


def test_documents_are_paged_read_once_per_change_and_looked_up_by_id(pipeline, tmp_path, monkeypatch):
    pipeline.ingest(_files(tmp_path, 5))
    docs = pipeline.documents()
    assert [d.source for d in docs] == [f"f{i}.{'md' if i % 2 else 'txt'}" for i in range(5)]
    assert pipeline.documents(1, 2) == docs[1:3] and pipeline.documents(4, 10) == docs[4:]
    assert pipeline.documents(9, 3) == []
    with pytest.raises(ValueError, match="offset and limit"):
        pipeline.documents(-1)
    facets = pipeline.facets()
    assert facets.sources == tuple(d.source for d in docs) and facets.doc_types == ("md", "txt")

    col = pipeline._active.collection
    scrolls, real_scroll = [], col.scroll
    monkeypatch.setattr(col, "scroll", lambda *a, **k: (scrolls.append(a), real_scroll(*a, **k))[1])
    for _ in range(3):  # page reruns: no store read while nothing changed
        pipeline.documents(0, 2), pipeline.facets()
    assert scrolls == []
    assert pipeline.delete("f0.txt") == [docs[0].doc_id]
    assert [d.doc_id for d in pipeline.documents()] == [d.doc_id for d in docs[1:]] and scrolls
    n = len(scrolls)
    pipeline.ingest([Source.upload("late.txt", b"a late note about lemurs")])
    assert "late.txt" in pipeline.facets().sources and len(scrolls) > n  # an ingest is a change too

    found = pipeline.documents_by_id([docs[2].doc_id, docs[3].doc_id, docs[2].doc_id, "0" * 64])
    assert found == {docs[2].doc_id: docs[2], docs[3].doc_id: docs[3]}


def test_the_original_is_read_only_when_asked_and_checked_then(pipeline, tmp_path):
    path = tmp_path / "local.txt"
    path.write_text("nebulae are big")
    doc_id = pipeline.ingest([path]).files[0].doc_id
    handle = pipeline.document_file(doc_id)  # nothing read yet
    assert handle.name == "local.txt" and handle.mime == "text/plain" and handle.size_bytes == 15
    assert handle.read() == b"nebulae are big"
    path.write_text("nebulae are BIG")  # same size: only the content check can tell
    with pytest.raises(IndexerError, match="changed since it was ingested"):
        handle.read()
    with pytest.raises(IndexerError, match="changed since it was ingested"):
        pipeline.document_file(doc_id).read()


def test_the_record_is_fetched_once_per_file(pipeline, tmp_path, monkeypatch):
    a, c = _files(tmp_path, 2)
    b = tmp_path / "copy.txt"
    b.write_bytes(a.read_bytes())
    col = pipeline._active.collection
    asked, real = [], col.retrieve
    monkeypatch.setattr(col, "retrieve", lambda ids: (asked.extend(ids), real(ids))[1])
    report = pipeline.ingest([a, b, c])
    assert [f.status for f in report.files] == ["ok", "duplicate", "ok"]
    assert "same content already indexed as f0.txt" in report.files[1].reason  # known from this run's own write
    assert sorted(asked) == sorted(record_id(f.doc_id) for f in report.files)
