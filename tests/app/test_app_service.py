"""The shared Service: searches during an ingest, one writer at a time, router views, the store's cluster."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app import charts
from app.sample import sample_files
from app.service import Busy, Service
from indexer import IndexerSettings, Source

WAIT = 60  # seconds: a generous bound for "did not hang", not a speed claim


@pytest.fixture
def service(app_env):
    s = Service(IndexerSettings.from_env())
    yield s
    s.close()


def test_searches_run_while_an_ingest_is_in_progress_and_writers_are_refused(service):
    service.ingest(sample_files()[:2], "first two")
    embedding = threading.Event()
    release = threading.Event()
    result: dict = {}

    def progress(event) -> None:
        if event.stage == "embed" and not embedding.is_set():
            embedding.set()
            assert release.wait(WAIT)  # hold the ingest (and the pipeline's writer lock) right here

    def ingest() -> None:
        uploads = [Source.upload(f"heron-{i}.txt", f"The grey heron {i} stood in the reeds. ".encode() * 20)
                   for i in range(3)]
        result["report"] = service.ingest(uploads, "herons", progress)

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        assert embedding.wait(WAIT)
        assert service.busy is not None and service.busy.kind == "ingest"
        # several sessions search while the ingest is stuck mid-file: nobody waits for it
        found: list = []
        errors: list = []

        def search(mode: str) -> None:
            try:
                hits = service.pipeline.search("the people", k=5, mode=mode)
                found.append((mode, hits))
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        readers = [threading.Thread(target=search, args=(m,)) for m in ("hybrid", "dense", "keyword")]
        for t in readers:
            t.start()
        for t in readers:
            t.join(WAIT)
        assert not errors and len(found) == 3 and all(hits for _, hits in found)
        assert all(h.source in {p.name for p in sample_files()[:2]} for _, hits in found for h in hits)
        assert service.pipeline.stats().documents == 2 and service.pipeline.documents()
        # a second admin is told at once instead of queueing behind the running ingest
        with pytest.raises(Busy, match="ingest of herons"):
            service.ingest_sample()
        with pytest.raises(Busy):
            service.delete([service.pipeline.documents()[0].doc_id])
        with pytest.raises(Busy):
            service.reindex(force=True)
    finally:
        release.set()
        writer.join(WAIT)
    assert result["report"].ok == 3 and service.busy is None
    assert service.pipeline.stats().documents == 5
    assert service.last_report["label"] == "herons" and service.last_report["ok"] == 3
    service.ingest_sample()  # the guard was released


def test_a_failing_ingest_releases_the_guard(service, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service.pipeline, "ingest", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        service.ingest_sample()
    assert service.busy is None
    monkeypatch.undo()
    assert service.ingest_sample().ok == len(sample_files())


def test_routing_view_covers_the_text_tokens_only(service):
    emb = service.pipeline.embedder
    text = "Grandeur in this view of life"
    view = service.pipeline.routing(text, query=True)
    assert view.tokens == emb.tokenizer.encode(text, add_special_tokens=False).tokens
    n_layers = len(emb.router_outputs)
    assert view.experts.shape == (n_layers, len(view.tokens), 2) and view.weights.shape == view.experts.shape
    usage = view.usage  # (L, E)
    assert usage.shape == (n_layers, view.num_experts) and np.allclose(usage.sum(axis=1), 1.0)
    # naive reference: count the weight each expert got, token by token
    ref = np.zeros_like(usage)
    for layer in range(n_layers):
        for t in range(len(view.tokens)):
            for j in range(view.experts.shape[-1]):
                ref[layer, view.experts[layer, t, j]] += view.weights[layer, t, j]
    assert np.allclose(usage, ref / ref.sum(axis=1, keepdims=True))
    doc = service.pipeline.routing(text, query=False)
    assert doc.tokens == view.tokens
    same = charts.agreement(view, view)
    assert np.allclose(same, 1.0) and np.all((charts.agreement(view, doc) >= 0) & (charts.agreement(view, doc) <= 1))
    table = charts.token_table(view)
    assert list(table["token"]) == view.tokens and table.shape[1] == 1 + n_layers
    frame = charts.usage_frame(view)
    assert len(frame) == n_layers * view.num_experts and frame["share"].between(0, 1).all()
    charts.heatmap(view, "q").to_dict()  # a valid Vega-Lite spec


def test_routing_is_kept_for_reruns(service, monkeypatch):
    emb = service.pipeline.embedder
    calls = []
    real = emb.route
    monkeypatch.setattr(emb, "route", lambda text, query=True: (calls.append((text, query)), real(text, query))[1])
    first = service.pipeline.routing("the origin of species", query=True)
    again = service.pipeline.routing("the origin of species", query=True)
    assert again is first and calls == [("the origin of species", True)]  # a rerun does not run the model
    service.pipeline.routing("the origin of species", query=False)
    assert len(calls) == 2  # as a document it is another text for the router (another prefix)


def test_an_embedded_store_has_no_cluster(service):
    assert service.pipeline.stats().cluster is None
