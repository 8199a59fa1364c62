"""Names the admin pages show in markdown (model names, server folders) read as themselves once rendered: no
literal backslashes (an escape inside a code span shows as a backslash), no markup taken from a name (issue 24
item 4).  Every markdown-bearing element of the page (markdown, captions, alerts, metric labels and values,
button labels, progress texts) is rendered by a CommonMark renderer (markdown-it-py, as Streamlit's frontend
follows CommonMark) and its text compared with the names."""

from __future__ import annotations

import html
import re

from app_helpers import open_page, sign_in
from markdown_it import MarkdownIt

from app.auth import ENV_VAR
from app.service import get_service

MD = MarkdownIt("commonmark").enable("strikethrough")
NAME = "tiny_moe*v2*"  # underscores and asterisks: markup if unescaped, backslashes if escaped inside a code span


def rendered(source: str) -> str:
    """Markdown as the reader sees it: rendered, tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", MD.render(source)))


def page_text(at) -> str:
    sources = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success")
               for e in at.get(kind)]
    sources += [m.label for m in at.metric] + [m.value for m in at.metric] + [b.label for b in at.button]
    sources += [p.text for p in at.get("progress")]
    return "\n".join(rendered(str(s)) for s in sources)


def test_model_names_on_the_status_page_render_as_themselves(app_env, monkeypatch, tiny_model_dir, tmp_path,
                                                             admin_hash):
    from app_models import WITH_ONNX, retrained

    from embedder.registry import publish

    root = tmp_path / "models" / NAME
    a = publish(tiny_model_dir, root, ignore=WITH_ONNX)
    for name, value in {"MOESEARCH_MODEL": str(root), "MOESEARCH_MODEL_POLL_SECONDS": "0", ENV_VAR: admin_hash}.items():
        monkeypatch.setenv(name, value)
    get_service().ingest_sample()
    b = publish(retrained(tiny_model_dir, tmp_path / "b"), root, ignore=WITH_ONNX)  # stale: both names shown
    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/status.py").run()
    assert not at.exception
    shown = page_text(at)
    serving, current = f"{NAME}@{a.version}", f"{NAME}@{b.version}"
    assert f"Serving {serving}:" in shown and f"Current {current}:" in shown
    assert f"The index was built with {serving}; the current model is {current}." in shown
    assert {m.label: rendered(m.value).strip() for m in at.metric}["Serving queries"] == serving
    assert str(get_service().pipeline.model_info().model_dir) in shown
    assert "\\" not in shown, [line for line in shown.splitlines() if "\\" in line]


def test_server_folders_on_the_ingest_page_render_as_themselves(app_env, monkeypatch, tmp_path, admin_hash):
    allowed = tmp_path / "shared_docs-2024" / "in*box*"
    allowed.mkdir(parents=True)
    monkeypatch.setenv(ENV_VAR, admin_hash)
    monkeypatch.setenv("MOESEARCH_INGEST_ROOTS", str(allowed))
    get_service().ingest_sample()
    at = sign_in(open_page("views/ingest.py"))
    shown = page_text(at)
    assert f"Allowed: {allowed}" in shown
    assert f"The index is up to date with {get_service().pipeline.stats().model_id}." in shown
    assert "\\" not in shown, [line for line in shown.splitlines() if "\\" in line]
