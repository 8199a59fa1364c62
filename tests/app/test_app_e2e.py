"""End to end in headless Chromium: ``streamlit run`` on a free port, sign in, upload a PDF and a text file,
watch the progress bar finish, search, find the right source and page, open and download the original, check the
document's HTML renders as text, delete the PDF, search again.  Screenshots of the pages land in
``MOESEARCH_SCREENSHOT_DIR`` (or the test's tmp folder); ``tests/app/make_screenshots.py`` makes the README ones
with the shipped model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from app_helpers import PASSWORD
from app_server import CHROMIUM, CHROMIUM_ARGS, browser_env, new_page, streamlit_app, wait_charts, wait_idle

from app.sample import SAMPLE_DIR

pytestmark = pytest.mark.e2e
NOTES = ("Field notes from the estuary. The pelican colony is nesting again. "
         "<script>window.__xss = 1; alert('pwned')</script> "
         "<img src=x onerror=\"window.__xss = 2; alert('img')\"> Eggs counted: 41.")

# Records every value the progress bar shows (Streamlit re-renders it as the ingest reports progress).
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const seen = () => document.querySelectorAll("[data-testid='stProgress'] [role='progressbar']").forEach(bar => {
    const v = Number(bar.getAttribute("aria-valuenow"));
    if (window.__progress[window.__progress.length - 1] !== v) window.__progress.push(v);
  });
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                     attributeFilter: ["aria-valuenow"]});
}"""


def _need_browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        print(f"SKIPPED browser test: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        print(f"SKIPPED browser test: playwright is not installed ({exc})")
        pytest.skip("playwright is not installed")
    return sync_playwright


def _search(page, query: str) -> None:
    box = page.get_by_placeholder("Ask a question or type some words...")
    box.fill(query)
    box.press("Enter")
    wait_idle(page)


def test_admin_uploads_searches_opens_and_deletes_in_a_real_browser(tmp_path, tiny_model_dir, admin_hash):
    sync_playwright = _need_browser()
    shots = Path(os.environ.get("MOESEARCH_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    pdf = shutil.copy(SAMPLE_DIR / "bill-of-rights.pdf", tmp_path / "bill-of-rights.pdf")
    notes = tmp_path / "field-notes.txt"
    notes.write_text(NOTES)
    env = browser_env(tiny_model_dir, tmp_path / "data", admin_hash)
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            # sign in as admin: a wrong password first
            page.goto(f"{url}/ingest")  # a deep link runs main.py too: the navigation bar is there
            page.locator("[data-testid='stTopNav']").wait_for()
            assert page.locator("[data-testid='stSidebarNav']").count() == 0
            page.get_by_label("Password", exact=True).fill("not the password")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Wrong password.").wait_for()
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()

            # upload a PDF and a text file, watch the progress bar finish
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(pdf), str(notes)])
            page.evaluate(RECORD_PROGRESS)
            page.get_by_role("button", name="Ingest 2 files").click()
            bar = page.locator("[data-testid='stProgress'] [role='progressbar']")
            bar.wait_for()
            page.get_by_text("Ingest finished: 2 uploaded files").wait_for(timeout=60_000)
            assert bar.get_attribute("aria-valuenow") == "100"
            seen = page.evaluate("() => window.__progress")
            assert seen[-1] == 100 and seen == sorted(seen), seen  # it moved forward and finished
            print("progress bar values seen:", seen)
            page.get_by_text("2 ingested").wait_for()
            page.get_by_text("Documents (2)").wait_for()
            wait_idle(page)
            page.screenshot(path=str(shots / "e2e-ingest.png"), full_page=True)

            # search: the right source and page in the first result
            page.get_by_role("link", name="Search").click()
            _search(page, "unreasonable searches")
            first = page.locator(".ms-head").first
            first.wait_for()
            assert "bill-of-rights.pdf" in first.inner_text() and "page 2 of 3" in first.inner_text()
            page.get_by_text("Why these results").wait_for()
            wait_charts(page, 2)  # query and top hit: which experts the router chose
            page.screenshot(path=str(shots / "e2e-search.png"), full_page=True)
            # the original opens in the browser at that page
            link = page.get_by_role("link", name="Open at page 2").first
            href = link.get_attribute("href")
            assert href.endswith("#page=2")
            response = page.request.get(url + href.split("#")[0])
            assert response.ok and response.headers["content-type"] == "application/pdf"
            assert response.body() == pdf.read_bytes()
            with page.expect_download() as download:
                page.get_by_role("button", name="Download PDF").first.click()
            assert download.value.suggested_filename == "bill-of-rights.pdf"
            assert Path(download.value.path()).read_bytes() == pdf.read_bytes()

            # the document's markup is shown as text and never runs
            _search(page, "pelican nesting")
            snippet = page.locator(".ms-snippet").first
            assert "<script>window.__xss = 1;" in snippet.inner_text()
            assert "<img src=x onerror=" in snippet.inner_text()
            assert snippet.locator("script, img").count() == 0
            assert page.evaluate("() => window.__xss") is None and not dialogs

            # delete the PDF, search again: gone
            page.get_by_role("link", name="Ingest").click()
            page.get_by_text("Documents (2)").wait_for()
            box = page.get_by_role("combobox", name="Delete documents")
            box.click()
            option = page.get_by_role("option", name="bill-of-rights.pdf")
            if not option.is_visible():  # the focused multiselect opens its list on a key, not always on the click
                box.press("ArrowDown")
            option.click()
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Delete", exact=True).click()
            page.get_by_role("button", name="Yes, delete 1 document").click()  # the confirm step
            page.get_by_text("Deleted 1 document: bill-of-rights.pdf").wait_for()
            page.get_by_text("Documents (1)").wait_for()
            page.get_by_role("link", name="Search").click()
            _search(page, "unreasonable searches")
            heads = page.locator(".ms-head")
            assert all("bill-of-rights.pdf" not in heads.nth(i).inner_text() for i in range(heads.count()))
            assert heads.count() or page.get_by_text("No results for").count()
        finally:
            browser.close()
