"""Search page: "Similar documents" on a result card, and the "why" panel of a task-expert (MoTE) model."""

from __future__ import annotations

from app_helpers import open_page

from app.render import task_expert_note
from app.sample import sample_files
from app.service import get_service


def _search(at, query: str):
    at.text_input(key="q").set_value(query)
    return at.run()


def test_similar_documents_toggle_lists_other_documents(app_env):
    report = get_service().ingest(sample_files(), "sample")
    assert report.all_ok
    at = _search(open_page(), "unreasonable searches")
    assert not at.exception
    toggle = next(t for t in at.toggle if t.label == "Similar documents")
    toggle.set_value(True).run()
    assert not at.exception and not at.error
    frames = [f.value for f in at.dataframe if "similarity" in f.value.columns]
    assert len(frames) == 1
    table = frames[0]
    top_source = get_service().pipeline.search("unreasonable searches", k=1, mode="hybrid")[0].source
    assert 1 <= len(table) <= 5 and top_source not in set(table["document"])
    assert table["similarity"].is_monotonic_decreasing
    expected = [s.doc.source for s in get_service().pipeline.similar(
        get_service().pipeline.search("unreasonable searches", k=1, mode="hybrid")[0].doc_id)]
    assert list(table["document"]) == expected


def test_why_panel_names_the_task_experts_of_a_task_model(app_env, tiny_task_model_dir, monkeypatch):
    monkeypatch.setenv("MOESEARCH_MODEL", str(tiny_task_model_dir))
    report = get_service().ingest(sample_files()[:3], "sample")
    assert report.all_ok
    at = _search(open_page(), "the people")
    assert not at.exception and not at.error
    info = get_service().pipeline.model_info()
    assert info.moe_mode == "task" and info.task_layers == (1,)
    note = task_expert_note(info)
    assert "search_query" in note and "symmetric" in note and "(1)" in note
    assert any("search_query" in m.value and "task" in m.value for m in at.markdown)
    assert not at.get("vega_lite_chart")  # no router heatmaps for a model without routers
