"""One shared pipeline, several searching threads (app sessions) while another thread ingests and deletes."""

from __future__ import annotations

import threading

import pytest
from indexer_testfiles import sentences

from indexer.pipeline import Pipeline


def _hammer(p: Pipeline, folder, n_files: int) -> None:
    errors: list[BaseException] = []
    seen_docs: set[str] = set()
    stop = threading.Event()

    def search_loop():
        while not stop.is_set():
            try:
                for mode in ("hybrid", "dense", "keyword"):
                    for h in p.search("capybara wetland", k=20, mode=mode):
                        seen_docs.add(h.doc_id)
                p.stats()
                p.documents()
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
                return

    readers = [threading.Thread(target=search_loop) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(n_files):
            (folder / f"f{i}.txt").write_text(sentences(15, i, "capybara") + " wetland")
            report = p.ingest([folder / f"f{i}.txt"])
            assert report.files[0].status == "ok"
        assert p.delete("f0.txt")
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors
    listed = {d.doc_id for d in p.documents()}
    assert len(listed) == n_files - 1
    stats = p.stats()
    assert stats.incomplete_chunks == 0 and stats.chunks == sum(d.chunks for d in p.documents())
    assert seen_docs  # the readers really searched while documents arrived


def test_edge_pipeline_is_safe_to_share(pipeline, tmp_path):
    _hammer(pipeline, tmp_path, 6)


@pytest.mark.parametrize("location", [":memory:", "local"])
def test_qdrant_client_local_modes_are_guarded(make_settings, tiny_embedder, tmp_path, location):
    from indexer.store.server import ClientRoot

    root = ClientRoot(":memory:" if location == ":memory:" else str(tmp_path / "qc"))
    with Pipeline(make_settings(), embedder=tiny_embedder, root=root) as p:
        assert p.stats().backend in ("memory", "local")
        _hammer(p, tmp_path, 4)
