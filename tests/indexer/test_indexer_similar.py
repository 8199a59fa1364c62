"""Similar documents: one similarity vector per document record (the symmetric task expert of a MoTE model, else
the mean of the chunks' search vectors), nearest-document queries, the CLI, and a clear error for old indexes."""

import dataclasses

import numpy as np
import pytest

from indexer.cli import run
from indexer.files import Source
from indexer.pipeline import IndexerError, Pipeline
from indexer.schema import record_id
from indexer.store.base import SIMILAR

DOCS = {
    "proteins.txt": "Protein folding is the process by which a chain of amino acids becomes a working protein. "
                    "Chaperones help proteins fold; misfolded proteins cause disease. " * 6,
    "folding.txt": "How do amino acid chains fold into proteins? Chaperone proteins assist the folding of a "
                   "protein, and misfolding is linked to disease. " * 6,
    "rockets.txt": "Liquid rocket engines burn fuel and oxidiser in a combustion chamber; the nozzle turns the hot "
                   "gas into thrust for the launch vehicle. " * 6,
    "empty.txt": "",
}


def ingest(p: Pipeline) -> dict[str, str]:
    report = p.ingest([Source.upload(n, t.encode()) for n, t in DOCS.items() if t])
    assert report.all_ok, report.to_dict()
    return {d.source: d.doc_id for d in p.documents()}


def stored_vector(p: Pipeline, doc_id: str) -> np.ndarray:
    col = p._current().collection
    return col.retrieve([record_id(doc_id)], vectors=(SIMILAR,))[0].vectors[SIMILAR]


def test_similar_ranks_by_the_mean_of_chunk_vectors_without_a_symmetric_task(pipeline):
    ids = ingest(pipeline)
    assert pipeline._current().spec.similar == "search_document"  # the tiny topk model has no tasks
    col = pipeline._current().collection
    for doc_id in ids.values():  # the record's vector is the normalised mean of its chunks' dense vectors
        chunks = [r for r in col.scroll([], limit=1000)[0] if r.payload.get("doc_id") == doc_id
                  and r.payload.get("kind") == "chunk"]
        dense = col.retrieve([r.id for r in chunks], vectors=("dense",))
        mean = np.mean([r.vectors["dense"] for r in dense], axis=0)
        np.testing.assert_allclose(stored_vector(pipeline, doc_id), mean / np.linalg.norm(mean), atol=1e-5)
    found = pipeline.similar("proteins.txt", k=5)
    assert [s.doc.source for s in found][0] == "folding.txt"  # itself left out; the near-duplicate first
    assert len(found) == 2 and found[0].score > found[1].score
    by_id = pipeline.similar(ids["rockets.txt"], k=1)
    assert len(by_id) == 1 and by_id[0].doc.source != "rockets.txt"


def test_similar_uses_the_symmetric_expert_of_a_task_model(make_settings, tiny_task_model_dir):
    from embedder.runtime import Embedder

    emb = Embedder(tiny_task_model_dir, device="cpu")
    with Pipeline(make_settings(model_dir=tiny_task_model_dir), embedder=emb) as p:
        ids = ingest(p)
        assert p._current().spec.similar == "symmetric"
        col = p._current().collection
        doc_id = ids["rockets.txt"]
        chunks = sorted((r for r in col.scroll([], limit=1000)[0] if r.payload.get("doc_id") == doc_id
                         and r.payload.get("kind") == "chunk"), key=lambda r: r.payload["chunk_index"])
        ref = emb.embed([r.payload["text"] for r in chunks], task="symmetric").mean(0)
        np.testing.assert_allclose(stored_vector(p, doc_id), ref / np.linalg.norm(ref), atol=1e-5)
        doc = emb.embed([chunks[0].payload["text"]], task="search_document")[0]
        sym = emb.embed([chunks[0].payload["text"]], task="symmetric")[0]
        assert float(doc @ sym) < 0.9999  # a different expert made it, not the search vectors
        assert [s.doc.source for s in p.similar("proteins.txt")][0] == "folding.txt"


def test_similar_errors_are_clear(pipeline):
    ingest(pipeline)
    with pytest.raises(IndexerError, match="no document matches 'nope.txt'"):
        pipeline.similar("nope.txt")
    with pytest.raises(ValueError, match="k must be"):
        pipeline.similar("proteins.txt", k=0)
    active = pipeline._current()  # an index built before similarity vectors existed
    pipeline._active = dataclasses.replace(active, spec=dataclasses.replace(active.spec, similar=""))
    with pytest.raises(IndexerError, match="reindex"):
        pipeline.similar("proteins.txt")


def test_cli_similar(make_settings, tiny_embedder, monkeypatch, capsys, tiny_model_dir):
    settings = make_settings()
    with Pipeline(settings, embedder=tiny_embedder) as p:
        ingest(p)
    for key, value in (("MOESEARCH_DATA_DIR", str(settings.data_dir)), ("MOESEARCH_MODEL", str(tiny_model_dir)),
                       ("MOESEARCH_DEVICE", "cpu"), ("MOESEARCH_CHUNK_TOKENS", "48"),
                       ("MOESEARCH_CHUNK_OVERLAP", "8"), ("MOESEARCH_HNSW_THRESHOLD", "0")):
        monkeypatch.setenv(key, value)
    assert run(["similar", "proteins.txt", "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(" 1. ") and "folding.txt" in out
    assert run(["similar", "nope.txt"]) == 2
    assert "no document matches" in capsys.readouterr().err
