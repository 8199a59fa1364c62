"""Model lifecycle with two tiny models of the same model id and different weights (A, then B "retrained into the
same name"): ingest with A; publish B; stats says stale while searches stay A's; a reindex with an ingest and a
delete in the middle of it; every stored vector is then B's; rollback to A; gc; a reindex killed with SIGKILL
resumes, the serving index untouched; a collection written before versions were recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from indexer_testfiles import sentences
from model_variants import WITH_ONNX, retrained

from embedder.registry import publish, resolve, versions
from indexer.pipeline import Pipeline, Source
from indexer.schema import META_ID, VISIBLE
from indexer.store import PointRecord, scroll_all

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="session")
def model_b_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from embedder.export import export

    b = retrained(tiny_model_dir, tmp_path_factory.mktemp("model-b") / "tiny-moe")
    export(b, variants=("int8",))
    return b


@pytest.fixture
def registry(tmp_path, tiny_model_dir):
    root = tmp_path / "models" / "tiny"
    return root, publish(tiny_model_dir, root, ignore=WITH_ONNX)


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"d{i}.txt").write_text(sentences(30, i, "marmot") + "\n\n" + sentences(10, i + 10))
    return folder


def stored_vectors(p: Pipeline) -> tuple[list[str], np.ndarray]:
    """Every visible chunk's text and dense vector, read back from the embedded store."""
    col = p._active.collection
    ids = [r.id for r in scroll_all(col, VISIBLE)]
    points = col.shard.retrieve(ids, with_payload=True, with_vector=True)
    texts = [pt.payload["text"] for pt in points]
    return texts, np.array([pt.vector["dense"] for pt in points], dtype=np.float32)  # (N, D)


def assert_built_by(p: Pipeline, embedder, other) -> None:
    """Each stored vector is ``embedder``'s embedding of the stored chunk text (and not ``other``'s)."""
    texts, vectors = stored_vectors(p)
    assert len(texts) == p.stats().chunks > 0  # one point per visible chunk: nothing twice
    mine = embedder.embed_documents(texts)  # (N, D)
    theirs = other.embed_documents(texts)  # (N, D)
    off = np.linalg.norm(vectors - mine, axis=1)  # (N,) int8 activation scales depend on the batch: ~1e-3 noise
    other_off = np.linalg.norm(vectors - theirs, axis=1)  # (N,) ~0.4 between the two models
    assert off.max() < 0.01 and other_off.min() > 0.1


def dense(p: Pipeline, query: str = "marmot") -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 5)) for h in p.search(query, k=20, mode="dense")]


def test_publish_stale_reindex_during_writes_rollback_and_gc(make_settings, registry, model_b_dir, docs, tmp_path):
    from embedder.runtime import Embedder

    root, a = registry
    emb_a = Embedder(a.folder, device="cpu")
    with Pipeline(make_settings(model_dir=root, model_poll_seconds=0)) as p:
        p.ingest([docs])
        s = p.stats()
        assert not s.stale and s.serving_model == s.current_model == f"tiny@{a.version}"
        before = dense(p)

        b = publish(model_b_dir, root, ignore=WITH_ONNX)  # a retrain published into the same name
        assert b.version != a.version and resolve(root) == b
        emb_b = Embedder(b.folder, device="cpu")
        s = p.stats()  # the running pipeline sees the new version at once (poll interval 0)
        assert s.stale and s.reindex_needed and s.current_model == f"tiny@{b.version}"
        assert s.serving_model == f"tiny@{a.version}" and s.model_id == s.configured_model_id
        assert p.model_info().version == a.version and p.model_info(current=True).version == b.version
        assert dense(p) == before  # queries are still embedded by A against A's vectors
        top = p.search("marmot", k=1, mode="dense")[0]
        # the stored vector was embedded in a batch (int8 dynamic quantization scales per batch), so it differs
        # from a single embedding by ~1e-4; B's vectors give a score ~0.03 away
        assert top.score == pytest.approx(float(emb_a.embed_query("marmot") @ emb_a.embed_documents([top.text])[0]),
                                          abs=1e-3)

        # reindex in the background; an ingest and a delete happen while it runs; searches never fail
        in_reindex, writes_done = threading.Event(), threading.Event()

        def progress(event):
            if event.stage == "embed" and not in_reindex.is_set():
                in_reindex.set()
                assert writes_done.wait(60)

        reports, errors, seen, stop = [], [], [], threading.Event()

        def searcher():
            while not stop.is_set():
                try:
                    seen.append({h.source for h in p.search("marmot", k=200, mode="keyword")})
                except Exception as exc:  # noqa: BLE001 - asserted below
                    errors.append(exc)

        worker = threading.Thread(target=lambda: reports.append(p.reindex(progress=progress)))
        reader = threading.Thread(target=searcher)
        worker.start()
        reader.start()
        try:
            assert in_reindex.wait(60)
            assert p.ingest([Source.upload("late.txt", (sentences(20, 7, "marmot")).encode())]).ok == 1
            assert p.delete("d1.txt")
            assert p.stats().serving_model == f"tiny@{a.version}"  # still the old index until the switch
        finally:
            writes_done.set()
            worker.join(120)
            stop.set()
            reader.join()
        assert not errors and reports and reports[0].all_ok
        names = {"d0.txt", "d2.txt", "d3.txt", "late.txt"}
        assert {f.name for f in reports[0].files} == names
        first = {"d0.txt", "d1.txt", "d2.txt", "d3.txt"}
        assert seen and all(s in (first, first | {"late.txt"}, names) for s in seen)  # always a whole index
        s = p.stats()
        assert not s.stale and s.serving_model == s.current_model == f"tiny@{b.version}"
        assert {d.source for d in p.documents()} == names and s.documents == 4
        assert_built_by(p, emb_b, emb_a)
        kept = {c.state: c for c in p.collections()}
        assert kept["ready"].model == f"tiny@{a.version}" and kept["active"].model == f"tiny@{b.version}"

        # rollback: the kept A collection (it got late.txt and lost d1.txt before the switch) is brought up to
        # date with what changed since (later.txt in, d0.txt out), not rebuilt
        assert p.ingest([Source.upload("later.txt", sentences(20, 8, "marmot").encode())]).ok == 1
        assert p.delete("d0.txt")
        names = {"d2.txt", "d3.txt", "late.txt", "later.txt"}
        back = p.reindex(model=f"{root}@{a.version}")
        assert back.ok == 1 and back.duplicates == 3 and back.all_ok
        assert [f.name for f in back.files if f.status == "ok"] == ["later.txt"]
        s = p.stats()
        assert s.serving_model == s.current_model == f"tiny@{a.version}" and not s.stale
        assert resolve(root) == a  # the name's pointer followed the rollback
        assert {d.source for d in p.documents()} == names
        assert_built_by(p, emb_a, emb_b)

        plan = p.gc(dry_run=True, models=True)
        assert [c.model for c in plan.collections] == [f"tiny@{b.version}"] and plan.model_versions == (
            f"tiny@{b.version}",)
        assert len(p.root.collections()) == 2 and versions(root) == [a.version, b.version]  # nothing removed yet
        p.gc(models=True)
        assert p.root.collections() == [s.collection] and versions(root) == [a.version]
        assert {h.source for h in p.search("marmot", k=50)} == names


KILLED = textwrap.dedent("""
    import sys, time
    from indexer.pipeline import Pipeline
    from indexer.settings import IndexerSettings

    data_dir, model = sys.argv[1:3]
    settings = IndexerSettings(data_dir=data_dir, model_dir=model, device="cpu", chunk_tokens=48, chunk_overlap=8,
                               batch_size=2, hnsw_threshold=0)

    def progress(event):
        if event.stage == "embed":
            print(f"EMBED {event.files_done} {event.chunks_done} {event.chunks_total}", flush=True)
            time.sleep(0.02)

    with Pipeline(settings) as p:
        report = p.reindex(progress=progress)
    print("DONE", report.ok, flush=True)
""")


def test_sigkill_mid_reindex_leaves_the_serving_index_and_resumes(make_settings, registry, model_b_dir, tmp_path):
    from embedder.runtime import Embedder

    root, a = registry
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(5):
        (folder / f"doc{i}.txt").write_text(sentences(40, i, f"topic{i}"))
    settings = make_settings(model_dir=root, batch_size=2)
    with Pipeline(settings) as p:
        p.ingest([folder])
        serving, before, docs = p.stats().collection, dense(p, "topic3"), p.documents()
    b = publish(model_b_dir, root, ignore=WITH_ONNX)

    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(settings.data_dir), str(root)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, line = False, ""
    for line in proc.stdout:
        parts = line.split()
        if parts[0] == "EMBED" and int(parts[1]) == 2 and 0 < int(parts[2]) < int(parts[3]):
            os.kill(proc.pid, signal.SIGKILL)  # mid-document of the third file
            killed = True
            break
    proc.wait(timeout=60)
    assert killed, f"never reached the third document: {line!r} {proc.stderr.read()[-2000:]}"

    with Pipeline(settings) as p:
        s = p.stats()
        assert s.collection == serving and s.serving_model == f"tiny@{a.version}" and s.stale
        assert p.documents() == docs and dense(p, "topic3") == before and s.incomplete_chunks == 0
        assert {c.state for c in p.collections()} == {"active", "building"}  # the half-built one is kept
        report = p.reindex()
        assert report.all_ok and report.duplicates == 2 and report.ok == 3  # resumed after the two finished files
        s = p.stats()
        assert s.serving_model == f"tiny@{b.version}" and not s.stale and s.documents == 5
        assert p.stats().incomplete_chunks == 0
        assert_built_by(p, Embedder(b.folder, device="cpu"), Embedder(a.folder, device="cpu"))


def test_collection_without_a_recorded_version_serves_and_is_stale(make_settings, tiny_embedder, docs):
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        p.ingest([docs])
        legacy = {k: v for k, v in p._active.spec.to_payload("ready").items()
                  if k not in ("model_version", "model_name")}  # as moesearch wrote it before versions
        p._active.collection.upsert([PointRecord(META_ID, legacy)])
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        s = p.stats()
        assert s.stale and s.serving_model.endswith("@unknown") and p.search("marmot")
        assert p.reindex().ok == 4
        s = p.stats()
        assert not s.stale and s.serving_model == f"{Path(tiny_embedder.model_dir).name}@{tiny_embedder.model_version}"


def test_cli_stats_reindex_model_and_gc(registry, model_b_dir, docs, data_dir, monkeypatch, capsys):
    from indexer.cli import run

    root, a = registry
    for name, value in {"MOESEARCH_DATA_DIR": str(data_dir), "MOESEARCH_MODEL": str(root), "MOESEARCH_DEVICE": "cpu",
                        "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
                        "MOESEARCH_HNSW_THRESHOLD": "0"}.items():
        monkeypatch.setenv(name, value)
    for name in ("QDRANT_URL", "MOESEARCH_BACKEND", "MOESEARCH_DIM"):
        monkeypatch.delenv(name, raising=False)

    def stats() -> dict:
        assert run(["stats", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    assert run(["ingest", str(docs)]) == 0
    capsys.readouterr()
    b = publish(model_b_dir, root, ignore=WITH_ONNX)
    s = stats()
    assert s["stale"] is True and s["serving_model"] == f"tiny@{a.version}"
    assert s["current_model"] == f"tiny@{b.version}"
    assert run(["stats"]) == 0
    assert "python -m indexer reindex" in capsys.readouterr().out
    assert run(["reindex"]) == 0
    capsys.readouterr()
    s = stats()
    assert s["stale"] is False and s["serving_model"] == f"tiny@{b.version}"
    assert run(["reindex", "--model", f"{root}@{a.version}"]) == 0  # rollback
    capsys.readouterr()
    assert stats()["serving_model"] == f"tiny@{a.version}"
    assert run(["gc", "--dry-run", "--models", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] and [c["model"] for c in plan["collections"]] == [f"tiny@{b.version}"]
    assert plan["model_versions"] == [f"tiny@{b.version}"]
    assert run(["gc"]) == 0
    assert "dropped 1 collection" in capsys.readouterr().out
    assert versions(root) == [a.version, b.version]  # model versions only go with --models
    assert run(["reindex", "--model", str(root / "nope")]) == 2
    assert "no model there" in capsys.readouterr().err
