"""A shared search link opens the same search: ``?q=...&mode=...`` fill the box and the mode (headless Chromium)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, browser_env, new_page, streamlit_app, wait_idle

pytestmark = pytest.mark.e2e


def test_query_and_mode_come_from_the_url(tmp_path, tiny_model_dir, admin_hash):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    notes = tmp_path / "field-notes.txt"
    notes.write_text("Field notes from the estuary. The pelican colony is nesting again. Eggs counted: 41.")
    env = browser_env(tiny_model_dir, tmp_path / "data", admin_hash)
    subprocess.run([sys.executable, "-m", "indexer", "ingest", str(notes)], cwd=ROOT, env={**env, "PATH": ""},
                   check=True, capture_output=True)
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)
            page.goto(f"{url}/?q=pelican+colony&mode=keyword")
            wait_idle(page)
            assert page.get_by_placeholder("Ask a question or type some words...").input_value() == "pelican colony"
            page.get_by_text("· keyword ·").wait_for()
            assert "field-notes.txt" in page.locator(".ms-head").first.inner_text()
            # changing the mode writes it back into the URL, so the link can be shared
            page.locator("[data-testid=stButtonGroup] button", has_text="Dense").click()
            wait_idle(page)
            page.get_by_text("· dense ·").wait_for()
            shared = page.url
            assert "mode=dense" in shared.lower() and "q=pelican" in shared
            other = new_page(browser)  # the shared link, in a new session
            other.goto(shared)
            wait_idle(other)
            other.get_by_text("· dense ·").wait_for()
        finally:
            browser.close()
