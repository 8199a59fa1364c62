"""Status page and the service-start failure page, through AppTest."""

from __future__ import annotations

from app_helpers import htmls, open_page, texts

from app.sample import sample_files
from app.service import get_service
from indexer import IndexerSettings, Pipeline


def test_status_shows_model_provider_store_counts_and_last_ingest(app_env, tiny_model_dir):
    at = open_page("views/status.py")
    assert not at.exception
    assert "Nothing has been ingested through the app yet." in texts(at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == "0" and metrics["Provider"] == "CPU"

    get_service().ingest_sample()
    at.run()
    service = get_service()
    card = service.model_info()
    assert card.provider == service.pipeline.embedder.session.get_providers()[0] == "CPUExecutionProvider"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == str(len(sample_files())) and metrics["Passages (chunks)"] != "0"
    page = "\n".join(htmls(at)) + texts(at.markdown)
    assert card.model_id in page and str(tiny_model_dir) in page
    assert "embedded (qdrant-edge)" in page and str(app_env / "qdrant") in page
    assert "model.cpu-int8.onnx" in page and "CPUExecutionProvider" in page
    assert any("the sample corpus, finished" in m.value for m in at.markdown)
    report = [d.value for d in at.dataframe if "reason" in d.value.columns][0]
    assert sorted(report["file"]) == sorted(p.name for p in sample_files())


def test_last_ingest_report_survives_a_restart(app_env):
    get_service().ingest_sample()
    get_service().close()
    import streamlit as st

    st.cache_resource.clear()
    at = open_page("views/status.py")
    assert any("the sample corpus, finished" in m.value for m in at.markdown)


def test_a_locked_store_gives_an_explanation_not_a_traceback(app_env):
    with Pipeline(IndexerSettings.from_env()):  # another process (here: another opener) holds the store
        at = open_page()
        assert not at.exception
        assert "in use by another process" in texts(at.error)
        assert any(b.label == "Try again" for b in at.button)
    at.button[0].click().run()  # released: the page works again
    assert not at.error and "The index is empty" in texts(at.info)


def test_a_missing_model_is_explained(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MOESEARCH_MODEL", str(tmp_path / "no-model"))
    at = open_page()
    assert not at.exception and "could not" in texts(at.error).lower()
