"""Model / settings change -> reindex into a new collection, switched atomically; searches keep working."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from indexer_testfiles import sentences

from indexer.pipeline import IndexerError, Pipeline


def _model_copy(src, dst, model_id):
    shutil.copytree(src, dst)
    meta = json.loads((dst / "moesearch.json").read_text())
    meta["model_id"] = model_id
    (dst / "moesearch.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"d{i}.txt").write_text(sentences(25, i, "marmot") + "\n\n" + sentences(10, i + 10))
    return folder


def _snapshot(p):
    return sorted((d.doc_id, d.source, d.ingested_at) for d in p.documents())


def test_model_change_serves_old_index_then_switches(make_settings, tiny_embedder, tiny_model_dir, tmp_path, docs):
    from embedder.runtime import Embedder

    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        p.ingest([docs])
        before = _snapshot(p)
        old_collection = p.stats().collection
    v2 = _model_copy(tiny_model_dir, tmp_path / "tiny-v2", "tiny-v2")
    with Pipeline(make_settings(model_dir=v2), embedder=Embedder(v2, device="cpu")) as p:
        stats = p.stats()
        assert stats.reindex_needed and stats.model_id != "tiny-v2" and stats.configured_model_id == "tiny-v2"
        assert p.search("marmot", mode="keyword")  # the old index still serves, with the old model
        assert len({h.doc_id for h in p.search("marmot", k=100)}) == 4

        seen, errors, stop = [], [], threading.Event()

        def searcher():
            while not stop.is_set():
                try:
                    seen.append(len({h.doc_id for h in p.search("marmot", k=200, mode="keyword")}))
                except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                    errors.append(exc)

        thread = threading.Thread(target=searcher)
        thread.start()
        try:
            report = p.reindex()
        finally:
            stop.set()
            thread.join()
        assert not errors and seen and set(seen) == {4}  # never a half-built index
        assert report.ok == 4 and report.all_ok
        stats = p.stats()
        assert not stats.reindex_needed and stats.model_id == "tiny-v2" and "tiny-v2" in stats.collection
        assert stats.collection != old_collection and stats.documents == 4
        assert _snapshot(p) == before  # same documents, ingest dates kept
        assert old_collection not in p.root.collections()
        assert {h.source for h in p.search("marmot", k=50)} == {f"d{i}.txt" for i in range(4)}
        assert p.reindex().files == ()  # nothing left to do


def test_chunk_setting_change_rebuilds_chunks(make_settings, tiny_embedder, docs):
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        p.ingest([docs])
        chunks_before = p.stats().chunks
    with Pipeline(make_settings(chunk_tokens=24, chunk_overlap=4), embedder=tiny_embedder) as p:
        assert p.stats().reindex_needed
        assert p.search("marmot")  # same model: the old index serves as is
        report = p.reindex()
        assert report.ok == 4
        stats = p.stats()
        assert not stats.reindex_needed and stats.chunks > chunks_before
        assert stats.extra["chunk_tokens"] == 24


def test_unloadable_old_model_asks_for_reindex(make_settings, tiny_embedder, tiny_model_dir, tmp_path, docs):
    from embedder.runtime import Embedder

    gone = _model_copy(tiny_model_dir, tmp_path / "gone", "tiny-gone")
    with Pipeline(make_settings(model_dir=gone), embedder=Embedder(gone, device="cpu")) as p:
        p.ingest([docs])
    shutil.rmtree(gone)
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        assert p.stats().reindex_needed
        with pytest.raises(IndexerError, match="reindex"):
            p.search("marmot")
        with pytest.raises(IndexerError, match="reindex"):
            p.ingest([docs])
        assert len(p.documents()) == 4  # listing still works
        assert p.reindex().ok == 4
        assert p.search("marmot", mode="keyword")


def test_forced_reindex_of_an_up_to_date_index(pipeline, docs):
    pipeline.ingest([docs])
    before = pipeline.stats()
    report = pipeline.reindex(force=True)
    after = pipeline.stats()
    assert report.ok == 4 and after.collection != before.collection and after.chunks == before.chunks


def test_reindex_that_cannot_rebuild_a_document_keeps_the_old_index(pipeline, docs):
    from indexer.schema import chunk_id

    pipeline.ingest([docs])
    before = pipeline.stats()
    victim = pipeline.documents()[0]
    assert victim.chunks >= 3
    pipeline._active.collection.delete_ids([chunk_id(victim.doc_id, 1)])  # a hole in the stored page
    with pytest.raises(IndexerError, match="index is unchanged.*d0.txt"):
        pipeline.reindex(force=True)
    after = pipeline.stats()
    assert after.collection == before.collection and pipeline.root.collections() == [before.collection]
    assert len(pipeline.search("marmot", k=100)) > 0


def test_leftovers_of_an_interrupted_reindex_are_dropped_on_open(make_settings, tiny_embedder):
    from indexer.schema import collection_spec

    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        active = p.stats().collection
        p.root.create("moesearch-half-built", collection_spec(p.target, p.settings))
        assert "moesearch-half-built" in p.root.collections()
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        assert p.root.collections() == [active]


def test_cancelled_reindex_keeps_the_serving_index_and_resumes(make_settings, tiny_embedder, tiny_model_dir,
                                                                tmp_path, docs):
    from embedder.runtime import Embedder
    from indexer.pipeline import ReindexCancelled

    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        p.ingest([docs])
        before, old_collection = _snapshot(p), p.stats().collection
    v2 = _model_copy(tiny_model_dir, tmp_path / "tiny-v2", "tiny-v2")
    with Pipeline(make_settings(model_dir=v2), embedder=Embedder(v2, device="cpu")) as p:
        cancel, done = threading.Event(), []

        def progress(event):  # the admin presses Cancel while the second document is being rebuilt
            if event.stage == "done":
                done.append(event.source)
            if len(done) == 1 and event.stage != "done":
                cancel.set()

        with pytest.raises(ReindexCancelled, match="index is unchanged; 1 document"):
            p.reindex(progress=progress, cancel=cancel)
        stats = p.stats()
        assert stats.collection == old_collection and stats.reindex_needed  # the old index still serves
        assert _snapshot(p) == before and p.search("marmot", mode="keyword")
        building = [c for c in p.collections() if c.name != old_collection]
        assert [(c.state, c.documents) for c in building] == [("building", 1)]  # kept for the next reindex
        report = p.reindex()
        assert report.ok == 3 and report.duplicates == 1 and report.all_ok  # it continued: one was already there
        assert p.stats().model_id == "tiny-v2" and _snapshot(p) == before


def test_ctrl_c_in_the_cli_cancels_a_reindex(tmp_path, tiny_model_dir):
    import os
    import signal
    import subprocess
    import sys

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(60):
        (folder / f"n{i:02}.txt").write_text(sentences(60, i, f"topic{i}"))
    env = {**os.environ, "MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DATA_DIR": str(tmp_path / "data"),
           "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
           "MOESEARCH_BATCH_SIZE": "2", "MOESEARCH_HNSW_THRESHOLD": "0"}

    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "indexer", *args], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout) if "--json" in args else out.stdout

    cli("ingest", str(folder), "--json")
    before = cli("stats", "--json")
    proc = subprocess.Popen([sys.executable, "-m", "indexer", "-v", "reindex", "--force"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until it is rebuilding (a cancel in the middle of a document: the test above)
        if "reindex: building" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "cancelled: reindex cancelled: the index is unchanged" in err and "Traceback" not in err
    after = cli("stats", "--json")
    assert after["collection"] == before["collection"] and after["documents"] == before["documents"] == 60
