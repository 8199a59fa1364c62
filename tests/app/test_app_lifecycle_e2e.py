"""End to end in headless Chromium: a model version is published while the app runs; the Status page shows it as
current and the index as stale; the admin starts "Re-index with the new model"; another browser session keeps
searching while it runs; the page then shows the switch (serving = the new version)."""

from __future__ import annotations

import time

import pytest
from app_helpers import PASSWORD
from app_models import WITH_ONNX, retrained
from app_server import CHROMIUM, CHROMIUM_ARGS, new_page, sign_in, streamlit_app, wait_idle

from app.auth import ENV_VAR

pytestmark = pytest.mark.e2e
WORDS = ("heron", "estuary", "tide", "reed", "mudflat", "nest", "salt", "marsh", "egret", "current", "channel")


def _need_browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc})")
    return sync_playwright


def _corpus(folder, n: int = 120):  # enough that the reindex outlasts a search round trip on an idle machine
    import random

    folder.mkdir()
    for i in range(n):
        rnd = random.Random(i)
        text = " ".join(" ".join(rnd.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(40))
        (folder / f"notes-{i:02d}.txt").write_text(text)
    return folder


def _metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']", has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def test_admin_switches_to_a_newly_published_model_while_searches_go_on(tmp_path, tiny_model_dir, admin_hash):
    sync_playwright = _need_browser()
    from embedder.registry import publish
    from indexer import IndexerSettings, Pipeline

    root = tmp_path / "models" / "tiny"
    a = publish(tiny_model_dir, root, ignore=WITH_ONNX)
    b_dir = retrained(tiny_model_dir, tmp_path / "b")
    env = {"MOESEARCH_MODEL": str(root), "MOESEARCH_DATA_DIR": str(tmp_path / "data"), "MOESEARCH_DEVICE": "cpu",
           "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8", "MOESEARCH_BATCH_SIZE": "4",
           "MOESEARCH_HNSW_THRESHOLD": "0", "MOESEARCH_MODEL_POLL_SECONDS": "0", ENV_VAR: admin_hash}
    with Pipeline(IndexerSettings.from_env(env)) as p:  # the store has one owner: ingest before the app opens it
        assert p.ingest([_corpus(tmp_path / "corpus")]).ok == 120
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            admin = new_page(browser, timeout_ms=120_000)
            sign_in(admin, url, PASSWORD)
            wait_idle(admin)
            admin.get_by_role("link", name="Status").click()
            wait_idle(admin)
            assert _metric(admin, "Serving queries") == f"tiny@{a.version}" == _metric(admin, "Current model")
            assert _metric(admin, "Index") == "up to date"

            b = publish(b_dir, root, ignore=WITH_ONNX)  # a retrain lands while the app runs: no restart
            admin.get_by_role("link", name="Status").click()
            wait_idle(admin)
            assert _metric(admin, "Current model") == f"tiny@{b.version}" and _metric(admin, "Index") == "stale"
            assert _metric(admin, "Serving queries") == f"tiny@{a.version}"

            reader = browser.new_page(viewport={"width": 1200, "height": 900})  # another visitor, searching
            reader.set_default_timeout(120_000)
            reader.goto(url)
            wait_idle(reader)
            admin.get_by_role("button", name="Re-index with the new model").click()
            searches, during = 0, 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                running = admin.locator("[data-testid='stProgress']").count() > 0
                box = reader.get_by_placeholder("Ask a question or type some words...")
                box.fill(f"{WORDS[searches % len(WORDS)]} marsh")
                box.press("Enter")
                wait_idle(reader)
                reader.locator(".ms-head").first.wait_for()  # results come (a timeout fails the test)
                searches += 1
                during += running and admin.locator("[data-testid='stProgress']").count() > 0
                if admin.get_by_text("Switched: queries are now served by").count():
                    break
            else:
                admin.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
                raise AssertionError(f"no switch within 300 s; {tmp_path / 'streamlit.log'}")
            assert during >= 1, "no search ran while the reindex was running"
            wait_idle(admin)
            assert _metric(admin, "Serving queries") == f"tiny@{b.version}" and _metric(admin, "Index") == "up to date"
            box = reader.get_by_placeholder("Ask a question or type some words...")
            box.fill("egret channel")
            box.press("Enter")
            reader.get_by_text("egret channel", exact=False).first.wait_for()
            reader.locator(".ms-head").first.wait_for()  # the new index answers
        finally:
            browser.close()
