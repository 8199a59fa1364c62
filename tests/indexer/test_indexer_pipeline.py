from __future__ import annotations

import hashlib
import time
import uuid

import pytest
from indexer_testfiles import make_pdf, sentences

from indexer.pipeline import IndexerError, Pipeline, SearchFilters, Source
from indexer.schema import NAMESPACE, VISIBLE, chunk_id
from indexer.store import Match, scroll_all
from indexer.writer import StoreFailure


def _write(folder, name, data):
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture
def corpus(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    _write(docs, "glaciers.txt", sentences(30, 1, "glacier") + "\n\nThe zebrafish heart regenerates quickly.")
    _write(docs, "sub/solar.md", "# Solar\n\n" + sentences(25, 2, "photovoltaic"))
    _write(docs, "report.pdf", make_pdf([sentences(15, 3, "enzyme"), sentences(15, 4, "kinase"),
                                         sentences(15, 5, "ribosome")]))
    _write(docs, "page.html", f"<html><body><p>{sentences(10, 6, 'volcano')}</p></body></html>")
    _write(docs, "tool.exe", b"MZ\x90\x00" + b"\x00" * 50)
    _write(docs, ".hidden.txt", "never read")
    return docs


def _points(p):
    return sorted(r.id for r in scroll_all(p._active.collection, [Match("kind", ("chunk",))]))


def test_files_without_an_extension_are_read_when_they_are_text(pipeline, tmp_path):
    docs = tmp_path / "project"
    docs.mkdir()
    _write(docs, "README", sentences(8, 1, "glacier"))
    _write(docs, "Makefile", "all:\n\tcc -o tool main.c\n")
    _write(docs, "tool", b"\x7fELF\x02\x01\x01" + b"\x00" * 60)  # a compiled program
    _write(docs, "scan", make_pdf(["Moraines are ridges of debris a glacier leaves."]))
    _write(docs, "data.bin", b"plain words in an unknown format")
    report = pipeline.ingest([docs])
    by_name = {f.name: f for f in report.files}
    assert {n: by_name[n].status for n in by_name} == {"README": "ok", "Makefile": "ok", "scan": "ok",
                                                        "tool": "skipped", "data.bin": "skipped"}
    assert "no extension, and the content is an ELF executable" in by_name["tool"].reason
    assert "not a supported document type (.bin)" in by_name["data.bin"].reason
    assert {d.source: d.doc_type for d in pipeline.documents()} == {"README": "txt", "Makefile": "txt", "scan": "pdf"}
    assert pipeline.search("glacier sentence", k=1)[0].source == "README"


def test_ingest_folder_search_and_list(pipeline, corpus):
    seen = []
    report = pipeline.ingest([corpus], progress=seen.append)
    by_name = {f.name: f for f in report.files}
    assert set(by_name) == {"glaciers.txt", "solar.md", "report.pdf", "page.html", "tool.exe"}
    assert [by_name[n].status for n in ("glaciers.txt", "solar.md", "report.pdf", "page.html")] == ["ok"] * 4
    assert by_name["tool.exe"].status == "skipped" and "not a supported document type" in by_name["tool.exe"].reason
    assert by_name["report.pdf"].pages == 3 and report.all_ok and report.ok == 4
    assert {e.stage for e in seen} >= {"read", "embed", "done"} and seen[-1].fraction == 1.0
    assert all(0.0 <= e.fraction <= 1.0 for e in seen)

    stats = pipeline.stats()
    assert stats.documents == 4 and stats.chunks == report.chunks and stats.backend == "edge"
    assert stats.incomplete_chunks == 0 and not stats.reindex_needed
    docs = {d.source: d for d in pipeline.documents()}
    pdf = docs["report.pdf"]
    assert pdf.doc_id == hashlib.sha256((corpus / "report.pdf").read_bytes()).hexdigest()
    assert pdf.pages == 3 and pdf.chunks == by_name["report.pdf"].chunks and pdf.doc_type == "pdf"
    assert pdf.ingested_at.endswith("Z") and pdf.path == str((corpus / "report.pdf").absolute())

    hits = pipeline.search("ribosome", k=3, mode="keyword")
    assert hits and hits[0].source == "report.pdf" and hits[0].page == 3
    assert "ribosome" in [t.lower() for t in hits[0].matched_terms] and "ribosome" in hits[0].text.lower()
    for mode in ("hybrid", "dense", "keyword"):
        got = pipeline.search("zebrafish heart", k=5, mode=mode)
        assert 0 < len(got) <= 5 and all(h.text for h in got)
    hybrid = pipeline.search("zebrafish heart", k=5)
    assert hybrid[0].source == "glaciers.txt" and {"zebrafish", "heart"} <= set(hybrid[0].matched_terms)
    assert all(a.score >= b.score for a, b in zip(hybrid, hybrid[1:], strict=False))
    assert pipeline.search("the of and", mode="keyword") == []  # stop words only


def test_point_ids_are_deterministic_and_reingest_is_a_noop(pipeline, corpus):
    first = pipeline.ingest([corpus])
    ids = _points(pipeline)
    doc = {d.source: d for d in pipeline.documents()}["report.pdf"]
    expected = {chunk_id(doc.doc_id, i) for i in range(doc.chunks)}
    assert expected <= set(ids)
    assert chunk_id(doc.doc_id, 0) == str(uuid.uuid5(NAMESPACE, f"{doc.doc_id}:0"))
    listed = [(d.doc_id, d.ingested_at) for d in pipeline.documents()]
    again = pipeline.ingest([corpus])
    assert [f.status for f in again.files if f.status != "skipped"] == ["duplicate"] * first.ok
    assert all(f.reason == "unchanged: already indexed" for f in again.files if f.status == "duplicate")
    assert _points(pipeline) == ids
    assert [(d.doc_id, d.ingested_at) for d in pipeline.documents()] == listed  # nothing rewritten


def test_same_bytes_under_another_name_is_a_duplicate(pipeline, tmp_path):
    a = _write(tmp_path, "a.txt", sentences(5, 1))
    b = _write(tmp_path, "b.txt", a.read_text())
    report = pipeline.ingest([a, b])
    assert [f.status for f in report.files] == ["ok", "duplicate"]
    assert "same content already indexed as a.txt" in report.files[1].reason


def test_changed_file_replaces_old_version_new_first(pipeline, tmp_path, monkeypatch):
    path = _write(tmp_path, "notes.txt", sentences(20, 1, "aardvark"))
    old = pipeline.ingest([path]).files[0]
    ops = []
    col = pipeline._active.collection
    real_upsert, real_delete = col.upsert, col.delete
    monkeypatch.setattr(col, "upsert", lambda pts: (ops.append(("upsert", pts[0].payload.get("kind"))),
                                                      real_upsert(pts)))
    monkeypatch.setattr(col, "delete", lambda where: (ops.append(("delete", where)), real_delete(where)))
    _write(tmp_path, "notes.txt", sentences(20, 2, "bandicoot"))
    new = pipeline.ingest([path]).files[0]
    assert new.status == "ok" and new.replaced == (old.doc_id,)
    kinds = [op for op in ops]
    assert kinds.index(("upsert", "doc")) < next(i for i, op in enumerate(ops) if op[0] == "delete")
    assert [d.doc_id for d in pipeline.documents()] == [new.doc_id]
    assert pipeline.search("aardvark", mode="keyword") == []
    assert pipeline.search("bandicoot", mode="keyword")[0].doc_id == new.doc_id
    assert pipeline.stats().chunks == new.chunks


def test_uploads_are_kept_for_download_and_paths_read_back(pipeline, tmp_path):
    data = make_pdf([sentences(8, 9, "quasar")])
    notes = b"plain upload text about quasars"
    report = pipeline.ingest([Source.upload("sky.pdf", data), Source.upload("notes.txt", notes)])
    assert [f.status for f in report.files] == ["ok", "ok"]
    assert pipeline.ingest(Source.upload("notes.txt", notes)).files[0].status == "duplicate"
    with pytest.raises(TypeError, match="cannot ingest bytes"):
        pipeline.ingest([b"raw bytes"])
    sky = report.files[0]
    got = pipeline.document_file(sky.doc_id)
    assert got.read() == data and got.name == "sky.pdf" and got.mime == "application/pdf"
    assert {d.source: d.kept_copy for d in pipeline.documents()} == {"sky.pdf": True, "notes.txt": True}
    path = _write(tmp_path, "local.txt", "a local file about nebulae")
    local = pipeline.ingest([path]).files[0]
    assert pipeline.document_file(local.doc_id).read() == path.read_bytes()  # read from its path, not copied
    path.write_text("changed since")
    with pytest.raises(IndexerError, match="not available"):
        pipeline.document_file(local.doc_id)
    with pytest.raises(IndexerError, match="no document"):
        pipeline.document_file("0" * 64)
    with pytest.raises(ValueError):
        Source.upload("../evil.txt", b"x")


def test_filters_by_source_type_and_date(pipeline, corpus):
    pipeline.ingest([corpus])
    only_pdf = pipeline.search("enzyme kinase glacier", k=50, filters=SearchFilters(doc_types=("pdf",)))
    assert only_pdf and {h.doc_type for h in only_pdf} == {"pdf"}
    two = pipeline.search("enzyme glacier", k=50, filters={"sources": ["glaciers.txt", "page.html"]})
    assert two and {h.source for h in two} <= {"glaciers.txt", "page.html"}
    assert pipeline.search("glacier", filters=SearchFilters(ingested_to="2000-01-01")) == []
    today = pipeline.search("glacier", filters=SearchFilters(ingested_from=time.strftime("%Y-%m-%d")))
    assert today and today[0].source == "glaciers.txt"
    with pytest.raises(ValueError, match="doc_types"):
        SearchFilters(doc_types=("exe",))
    with pytest.raises(ValueError, match="mode"):
        pipeline.search("x", mode="fuzzy")
    with pytest.raises(ValueError, match="empty"):
        pipeline.search("   ")


def test_neighbours_and_expand(pipeline, tmp_path):
    text = "\n\n".join(f"Paragraph {i} says {sentences(3, i)}" for i in range(12))
    path = _write(tmp_path, "long.txt", text)
    status = pipeline.ingest([path]).files[0]
    assert status.chunks >= 4
    hit = next(h for h in pipeline.search("Paragraph 6", k=20, mode="keyword") if 0 < h.chunk_index < status.chunks - 1)
    around = pipeline.neighbours(hit, before=1, after=1, query="paragraph")
    assert [h.chunk_index for h in around] == [hit.chunk_index - 1, hit.chunk_index, hit.chunk_index + 1]
    assert all("Paragraph" in h.matched_terms for h in around)
    merged = pipeline.expand(hit)
    assert merged in text and all(h.text.strip() in merged for h in around)
    assert pipeline.expand(hit, before=100, after=100) == text


def test_delete_by_doc_id_source_and_path(pipeline, corpus):
    pipeline.ingest([corpus])
    docs = {d.source: d for d in pipeline.documents()}
    assert pipeline.delete(docs["report.pdf"].doc_id) == [docs["report.pdf"].doc_id]
    assert pipeline.delete("solar.md") == [docs["solar.md"].doc_id]
    assert pipeline.delete(str(corpus / "page.html")) == [docs["page.html"].doc_id]
    assert pipeline.delete("nothing-like-this") == []
    assert [d.source for d in pipeline.documents()] == ["glaciers.txt"]
    assert pipeline.stats().chunks == docs["glaciers.txt"].chunks
    assert pipeline.search("ribosome", mode="keyword") == []


def test_a_document_is_invisible_until_complete_and_resumes_cleanly(pipeline, tmp_path, monkeypatch):
    path = _write(tmp_path, "big.txt", sentences(60, 4, "walrus"))
    col = pipeline._active.collection
    real = col.upsert
    calls = {"n": 0}

    def flaky(points):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(points)

    monkeypatch.setattr(col, "upsert", flaky)
    report = pipeline.ingest([path])
    assert report.files[0].status == "failed" and "store error: disk full" in report.files[0].reason
    assert report.store_error and not report.all_ok
    assert col.count([Match("kind", ("chunk",))]) > 0  # some chunks were written...
    assert col.count(VISIBLE) == 0 and pipeline.documents() == []  # ...but nothing is visible
    assert pipeline.search("walrus", mode="keyword") == []
    assert pipeline.stats().incomplete_chunks > 0
    monkeypatch.setattr(col, "upsert", real)
    again = pipeline.ingest([path]).files[0]
    assert again.status == "ok"
    assert col.count([Match("kind", ("chunk",))]) == again.chunks == pipeline.stats().chunks  # no duplicates
    assert pipeline.stats().incomplete_chunks == 0


def test_store_failure_stops_attempts_but_reports_every_file(pipeline, tmp_path, monkeypatch):
    files = [_write(tmp_path, f"f{i}.txt", sentences(3, i)) for i in range(3)]
    monkeypatch.setattr(pipeline._active.collection, "retrieve",
                        lambda ids: (_ for _ in ()).throw(StoreFailure("connection refused")))
    report = pipeline.ingest(files)
    assert [f.status for f in report.files] == ["failed"] * 3
    assert "store error" in report.files[0].reason and "not attempted" in report.files[2].reason


def test_second_pipeline_on_the_same_folder_is_refused(pipeline, make_settings, tiny_embedder):
    from indexer.store import StoreLockedError

    with pytest.raises(StoreLockedError, match="stop the app"):
        Pipeline(make_settings(), embedder=tiny_embedder)


def test_closed_pipeline_says_so(make_settings, tiny_embedder):
    p = Pipeline(make_settings(), embedder=tiny_embedder)
    p.close()
    with pytest.raises(IndexerError, match="closed"):
        p.search("x")
    with Pipeline(make_settings(), embedder=tiny_embedder) as again:  # the lock was released
        assert again.stats().documents == 0


def test_stats_and_model_info_carry_the_cpu_onnx_variant(make_settings, tiny_model_dir, tmp_path):
    """The CPU's int8-vs-fp32 choice (embedder.cpu_variant) and both timings reach stats and the model card; the
    setting MOESEARCH_ONNX_VARIANT forces one."""
    import shutil

    from embedder import cpu_variant as cv
    from embedder.runtime import Embedder
    from indexer.model_view import onnx_variant
    from indexer.settings import IndexerSettings

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    onnx = folder / "onnx"
    cv.write(onnx, cv.Calibration(108.0, 100.0, cv.fingerprints(onnx), cv.CpuInfo.read()))
    with Pipeline(make_settings(model_dir=folder)) as p:
        card, variant = p.model_info(), p.stats().extra["onnx_variant"]
    assert card.onnx_variant == "fp32" and card.model_file == "model.gather-fp32.onnx"
    assert card.variant_summary == "fp32 (int8 1.08x fp32 on this CPU, below the 1.15x rule)"
    assert (card.int8_texts_per_s, card.fp32_texts_per_s) == (108.0, 100.0)
    assert variant["variant"] == "fp32" and variant["file"] == "model.gather-fp32.onnx"
    assert variant["int8_over_fp32"] == 1.08 and variant["min_int8_speedup"] == 1.15
    with Pipeline(make_settings(model_dir=folder, onnx_variant="int8")) as p:
        card = p.model_info()
    assert card.onnx_variant == "int8" and card.model_file == "model.cpu-int8.onnx"
    assert card.variant_summary.startswith("int8 (forced by MOESEARCH_ONNX_VARIANT=int8; int8 1.08x fp32")
    with pytest.raises(ValueError, match=r"MOESEARCH_ONNX_VARIANT must be one of \('auto', 'int8', 'fp32'\)"):
        IndexerSettings.from_env({"MOESEARCH_ONNX_VARIANT": "fp16"})
    explicit = onnx_variant(Embedder(folder, device="cpu", variant="fused"))  # a file its caller named
    assert explicit["variant"] == "fused" and explicit["summary"] == "fused (named explicitly)"


def test_built_models_lists_both_and_marks_the_serving_one(tmp_path):
    from embedder.settings import MODELS_DIR
    from indexer import built_models

    rows = built_models(MODELS_DIR / "multilingual-e5-moe")
    assert [(m.name, m.languages) for m in rows] == [("multilingual-e5-moe", "about 100 languages"),
                                                      ("minilm-moe-upcycled", "English")]
    assert [m.serving for m in rows] == [True, False]
    assert not any(m.serving for m in built_models(tmp_path)) and not any(m.serving for m in built_models(None))
