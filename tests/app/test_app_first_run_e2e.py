"""A first run in headless Chromium, as ``bash scripts/run.sh`` leaves it: a fresh data folder and no admin password
configured.  Without signing in, a browser on this machine loads the sample corpus and gets a first result; every
request of the session (search, status and ingest pages, sign-in) goes to the app's own address and nowhere else;
the admin signs in with the password the server printed on its console, stays signed in across a reload and in a
new tab (an http-only session cookie), signs out, and a reload (or the old cookie replayed) is signed out."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, browser_env, streamlit_app, wait_idle

from app.auth import ENV_VAR, SESSION_PATH
from app.sample import sample_files
from app.session import COOKIE

pytestmark = pytest.mark.e2e
FIRST_PASSWORD = re.compile(r"shown this once\):\s+(\S+)")


def _session_call(method: str):
    return lambda r: urlsplit(r.url).path == SESSION_PATH and r.request.method == method


def _hosts_seen_by_the_page(page) -> set[str]:
    """Hosts in the page's own records: resources it loaded (fonts, scripts, images) and its favicon."""
    urls = page.evaluate("""() => [...performance.getEntriesByType('resource').map(e => e.name),
                                   ...[...document.querySelectorAll("link[rel~='icon']")].map(l => l.href)]""")
    return {urlsplit(u).netloc for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")}


def test_first_run_sample_search_private_and_an_admin_session_that_survives_reloads(tmp_path, tiny_model_dir):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    data = tmp_path / "data"
    env = browser_env(tiny_model_dir, data, admin_hash="")  # nothing configured: an empty variable is unset
    assert env[ENV_VAR] == ""
    log = tmp_path / "app.log"
    with streamlit_app(env, log) as url, sync_playwright() as pw:
        own = urlsplit(url).netloc
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 1000})
            context.set_default_timeout(60_000)
            hosts: set[str] = set()
            context.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
            page = context.new_page()
            page.on("websocket", lambda ws: hosts.add(urlsplit(ws.url).netloc))

            # step 2 of two: open the app, load the sample corpus without signing in, search, a first result
            page.goto(url)
            page.get_by_text("The index is empty.").wait_for()
            page.get_by_role("button", name="Load the sample corpus").click()
            box = page.get_by_placeholder("Ask a question or type some words...")
            box.wait_for(timeout=180_000)
            box.fill("unreasonable searches and seizures")
            box.press("Enter")
            first = page.locator(".ms-head").first
            first.wait_for()
            assert any(p.name in first.inner_text() for p in sample_files()), first.inner_text()
            wait_idle(page)
            seen = _hosts_seen_by_the_page(page)
            page.get_by_role("link", name="Status").click()
            wait_idle(page)
            page.get_by_role("link", name="Ingest").click()
            page.get_by_role("heading", name="Admin sign-in").wait_for()

            # the admin: the password printed once on the console at the first start, kept only as a hash
            password = FIRST_PASSWORD.search(log.read_text()).group(1)
            stored = (data / "app" / "admin_password.hash").read_text()
            assert password not in stored and stored.startswith("scrypt$")
            page.get_by_label("Password", exact=True).fill(password)
            with page.expect_response(_session_call("POST")) as answer:
                page.get_by_role("button", name="Sign in").click()
            assert answer.value.status == 204
            page.get_by_text("Signed in as admin").wait_for()
            cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
            assert page.evaluate("() => document.cookie").find(COOKIE) == -1  # scripts cannot read it

            page.reload()  # a reload is a new Streamlit session: signed in from the cookie
            page.get_by_text("Signed in as admin").wait_for()
            page.locator("[data-testid='stFileUploaderDropzoneInput']").wait_for(state="attached")
            tab = context.new_page()  # so is a new tab
            tab.goto(f"{url}/ingest")
            tab.get_by_text("Signed in as admin").wait_for()
            seen |= _hosts_seen_by_the_page(page) | _hosts_seen_by_the_page(tab)

            with tab.expect_response(_session_call("DELETE")) as answer:
                tab.get_by_role("button", name="Sign out").click()
            assert answer.value.status == 204
            tab.get_by_role("heading", name="Admin sign-in").wait_for()
            assert not [c for c in context.cookies() if c["name"] == COOKIE]
            page.reload()
            page.get_by_role("heading", name="Admin sign-in").wait_for()
            assert page.get_by_text("Signed in as admin").count() == 0

            replay = browser.new_context()  # the old cookie, replayed: revoked on the server
            replay.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path", "httpOnly", "sameSite")}])
            other = replay.new_page()
            other.goto(f"{url}/ingest")
            other.get_by_role("heading", name="Admin sign-in").wait_for()
            wait_idle(other)
            assert other.get_by_text("Signed in as admin").count() == 0
            replay.close()

            assert hosts and hosts <= {own}, hosts  # no request left for another host
            assert seen <= {own}, seen
        finally:
            browser.close()
    assert "admin password was made" in log.read_text()
