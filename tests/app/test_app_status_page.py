"""Status page and the service-start failure page, through AppTest."""

from __future__ import annotations

from app_helpers import htmls, open_page, texts

from app.sample import sample_files
from app.service import get_service
from indexer import IndexerSettings, Pipeline


def _admin_status(monkeypatch, admin_hash):
    """The Status page in a session signed in as admin (server paths and file names are for the admin)."""
    from app_helpers import sign_in

    from app.auth import ENV_VAR

    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/status.py").run()
    return at


def test_status_shows_model_provider_store_counts_and_last_ingest(app_env, tiny_model_dir, monkeypatch, admin_hash):
    at = _admin_status(monkeypatch, admin_hash)
    assert not at.exception
    assert "Nothing has been ingested through the app yet." in texts(at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == "0" and metrics["Provider"] == "CPU"

    get_service().ingest_sample()
    at.run()
    service = get_service()
    card = service.pipeline.model_info()
    assert card.provider == service.pipeline.embedder.session.get_providers()[0] == "CPUExecutionProvider"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents"] == str(len(sample_files())) and metrics["Passages (chunks)"] != "0"
    page = "\n".join(htmls(at)) + texts(at.markdown)
    assert card.model_id in page and str(tiny_model_dir) in page
    assert "embedded (qdrant-edge)" in page and str(app_env / "qdrant") in page
    assert "model.cpu-int8.onnx" in page and "CPUExecutionProvider" in page
    # the shared tiny model was never timed by `prepare`: int8 serves, and the page says why
    assert card.onnx_variant == "int8" and "int8 (not measured: no variant.json; run" in page
    assert "not measured" in page.split("int8 / fp32 on this CPU", 1)[1][:200]
    assert any("the sample corpus, finished" in m.value for m in at.markdown)
    report = [d.value for d in at.dataframe if "reason" in d.value.columns][0]
    assert sorted(report["file"]) == sorted(p.name for p in sample_files())
    models = [d.value for d in at.dataframe if "select with" in d.value.columns][0]
    assert list(models["model"]) == ["multilingual-e5-moe", "minilm-moe-upcycled"]
    assert list(models["select with"]) == ["MOESEARCH_MODEL=multilingual-e5-moe", "MOESEARCH_MODEL=minilm-moe-upcycled"]
    assert "serving" not in list(models["state"])  # the tiny test model serves, not a built one


def test_last_ingest_report_survives_a_restart(app_env, monkeypatch, admin_hash):
    get_service().ingest_sample()
    get_service().close()
    import streamlit as st

    st.cache_resource.clear()
    at = _admin_status(monkeypatch, admin_hash)
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


def test_status_shows_a_new_version_and_the_admin_switches_and_rolls_back(app_env, monkeypatch, tiny_model_dir,
                                                                         admin_hash, tmp_path):
    from app_helpers import sign_in
    from app_models import WITH_ONNX, retrained

    from app.auth import ENV_VAR
    from embedder.registry import publish, resolve

    root = tmp_path / "models" / "tiny"
    a = publish(tiny_model_dir, root, ignore=WITH_ONNX)
    for name, value in {"MOESEARCH_MODEL": str(root), "MOESEARCH_MODEL_POLL_SECONDS": "0", ENV_VAR: admin_hash}.items():
        monkeypatch.setenv(name, value)
    get_service().ingest_sample()
    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/status.py").run()

    def metrics():
        return {m.label: m.value for m in at.metric}

    assert not at.exception and metrics()["Serving queries"] == f"tiny@{a.version}" == metrics()["Current model"]
    assert metrics()["Index"] == "up to date" and "MoE mode `topk`" in texts(at.markdown)
    assert not [b for b in at.button if b.key == "reindex-new"]

    b = publish(retrained(tiny_model_dir, tmp_path / "b"), root, ignore=WITH_ONNX)  # the app keeps running
    at.run()
    assert metrics()["Index"] == "stale" and metrics()["Current model"] == f"tiny@{b.version}"
    assert metrics()["Serving queries"] == f"tiny@{a.version}"
    at.button(key="reindex-new").click().run()
    assert at.session_state["reindex_job"].wait(60)
    hits = get_service().pipeline.search("the people", k=3, mode="hybrid")
    assert hits
    at.run()
    assert not at.exception and metrics()["Serving queries"] == f"tiny@{b.version}"
    assert metrics()["Index"] == "up to date"
    assert "Switched: queries are now served by tiny@" in texts(at.success)
    assert any(d.value["model"].tolist() == [f"tiny@{a.version}"] for d in at.dataframe if "model" in d.value.columns)

    at.button(key=next(x.key for x in at.button if (x.key or "").startswith("rollback-"))).click().run()
    assert at.session_state["reindex_job"].wait(60)
    at.run()
    assert metrics()["Serving queries"] == f"tiny@{a.version}" == metrics()["Current model"]
    assert resolve(root) == a  # the rollback moved the name's pointer back


def test_the_admin_cancels_a_reindex_and_the_index_stays(app_env, monkeypatch, tiny_model_dir, admin_hash, tmp_path):
    from app_helpers import sign_in
    from app_models import WITH_ONNX, retrained

    from app.auth import ENV_VAR
    from embedder.registry import publish

    root = tmp_path / "models" / "tiny"
    a = publish(tiny_model_dir, root, ignore=WITH_ONNX)
    for name, value in {"MOESEARCH_MODEL": str(root), "MOESEARCH_MODEL_POLL_SECONDS": "0", ENV_VAR: admin_hash}.items():
        monkeypatch.setenv(name, value)
    service = get_service()
    service.ingest_sample()
    publish(retrained(tiny_model_dir, tmp_path / "b"), root, ignore=WITH_ONNX)
    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/status.py").run()
    with service.pipeline._write:  # an ingest holds the write lock: the reindex waits at its start
        at.button(key="reindex-new").click().run()
        job = at.session_state["reindex_job"]
        assert not job.finished and not at.exception
        at.button(key="cancel-reindex").click().run()
        assert job.cancel.is_set() and at.button(key="cancel-reindex").disabled
    assert job.wait(60) and "reindex cancelled: the index is unchanged" in job.error
    at.run()
    assert not at.exception and "The re-index was cancelled" in texts(at.info)
    assert {m.label: m.value for m in at.metric}["Serving queries"] == f"tiny@{a.version}"
    hits = service.pipeline.search("the people", k=3, mode="hybrid")
    assert hits
