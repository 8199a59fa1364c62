"""In headless Chromium: "Re-index all documents" on the Ingest page shows the job's progress and then its end by
itself, with nobody touching the page (issue 24: it stayed at "starting", as its panel refreshed for ingest jobs
only).  The page's progress texts are recorded as they change; the test waits for the finished line."""

from __future__ import annotations

import pytest
from app_helpers import PASSWORD
from app_server import CHROMIUM, CHROMIUM_ARGS, browser_env, new_page, sign_in, streamlit_app, wait_idle

from app.sample import sample_files
from indexer import IndexerSettings, Pipeline

pytestmark = pytest.mark.e2e

# Every progress text the page shows, in order (Streamlit replaces the element's text as the fragment reruns).
RECORD_TEXTS = """() => {
  window.__texts = [];
  const seen = () => document.querySelectorAll("[data-testid='stProgress']").forEach(bar => {
    const t = bar.innerText.trim();
    if (t && window.__texts[window.__texts.length - 1] !== t) window.__texts.push(t);
  });
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_the_reindex_panel_shows_the_end_without_a_reload(tmp_path, tiny_model_dir, admin_hash):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    env = browser_env(tiny_model_dir, tmp_path / "data", admin_hash)
    with Pipeline(IndexerSettings.from_env(env)) as p:  # the index has its documents before the app opens it
        assert p.ingest(sample_files()).all_ok
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser, timeout_ms=120_000)
            sign_in(page, url, PASSWORD)
            page.get_by_text(f"Documents ({len(sample_files())})").wait_for()
            wait_idle(page)
            page.evaluate(RECORD_TEXTS)
            page.get_by_role("button", name="Re-index all documents").click()
            page.get_by_text("Reindex finished: all documents").wait_for()  # no click, no reload
            texts = page.evaluate("() => window.__texts")
            assert any(t.startswith("Reindex of all documents:") for t in texts), texts  # shown while it ran
            page.get_by_text(f"{len(sample_files())} ingested").wait_for()
        finally:
            browser.close()
