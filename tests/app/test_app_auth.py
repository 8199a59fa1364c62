"""Sign-in throttling across sessions: failures are counted per client address in the server process, with
exponential back-off; a new session (a reload, a new browser context) does not start afresh, nor does a forged
X-Forwarded-For (the throttle itself: test_app_throttle.py).  New hashes need 12 characters.  Server folders are
admin-only (allow-listed)."""

from __future__ import annotations

import io
import os

import pytest
from app_helpers import PASSWORD, open_page, sign_in, texts

from app import auth
from app.auth import ENV_VAR, THROTTLE

INGEST = "views/ingest.py"


@pytest.fixture(autouse=True)
def fresh_throttle():
    THROTTLE.reset()
    yield
    THROTTLE.reset()


def test_lockout_survives_new_sessions(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    for attempt in range(auth.MAX_FAILURES):
        at = sign_in(open_page(INGEST), f"wrong guess {attempt}")  # a new session each time
        assert "Wrong password." in texts(at.error)
    assert "Too many wrong passwords" in texts(at.error)
    at = sign_in(open_page(INGEST), PASSWORD)  # a fresh session with the right password is still refused
    assert "Too many wrong passwords" in texts(at.error) and not at.file_uploader
    assert "admin" not in at.session_state


def test_new_hashes_need_12_characters(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("eleven char\n"))
    assert auth.main(["--stdin"]) == 2 and "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("twelve chars\n"))
    assert auth.main(["--stdin"]) == 0


def test_server_folders_are_off_without_allowed_roots(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = sign_in(open_page(INGEST))
    assert "Ingesting folders on the server is off" in texts(at.info)
    assert at.button(key="ingest-folder").disabled


def test_server_folders_only_under_the_allowed_roots(app_env, monkeypatch, admin_hash, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.txt").write_text("the allowed folder holds notes about ibexes")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("not for the index")
    (allowed / "escape").symlink_to(secret)
    monkeypatch.setenv(ENV_VAR, admin_hash)
    monkeypatch.setenv("MOESEARCH_INGEST_ROOTS", str(allowed))
    at = sign_in(open_page(INGEST))
    for outside in (str(secret), f"{allowed}/../secret", str(allowed / "escape")):
        at.text_input(key="folder").set_value(outside).run()
        at.button(key="ingest-folder").click().run()
        assert "outside the folders allowed" in texts(at.error), outside
        assert "job" not in at.session_state
    at.text_input(key="folder").set_value(str(allowed / "ok.txt")).run()
    at.button(key="ingest-folder").click().run()
    job = at.session_state["job"]
    assert job.wait(60) and job.result.ok == 1


def test_same_name_uploads_kept_both_unless_replace_is_ticked(app_env, monkeypatch, admin_hash):
    from app.service import get_service

    monkeypatch.setenv(ENV_VAR, admin_hash)
    service = get_service()
    first = service.ingest_uploads([("notes.txt", b"the first notes are about ospreys")])
    second = service.ingest_uploads([("notes.txt", io.BytesIO(b"the second notes are about eagles")),
                                     ("a\\b.txt", b"a backslash name about herons")])
    assert first.files[0].status == "ok"
    assert [f.name for f in second.files] == ["notes (2).txt", "a_b.txt"]
    assert "kept both" in second.files[0].reason
    third = service.ingest_uploads([("notes.txt", b"replacement notes about kites")], replace=True)
    assert third.files[0].replaced == (first.files[0].doc_id,) and "replaced" in third.files[0].reason
    assert sorted(d.source for d in service.pipeline.documents()) == ["a_b.txt", "notes (2).txt", "notes.txt"]
    assert not any((app_env / "app" / "spool").iterdir())  # the spooled uploads are gone


def test_cancel_button_stops_an_ingest(app_env, monkeypatch, admin_hash, tmp_path):
    from app.service import get_service

    monkeypatch.setenv(ENV_VAR, admin_hash)
    service = get_service()
    files = [(f"n{i}.txt", (f"note {i} about the migrating cranes. " * 400).encode()) for i in range(12)]
    job = service.start_ingest_uploads(files)
    assert service.cancel()
    assert job.wait(120)
    report = job.result
    assert report.skipped >= 1 and all(f.reason.startswith("not attempted") for f in report.files
                                       if f.status == "skipped")
    assert service.pipeline.stats().documents == report.ok and service.pipeline.stats().incomplete_chunks == 0


@pytest.mark.e2e
def test_lockout_survives_a_new_browser_context(tmp_path, tiny_model_dir, admin_hash):
    from app_server import CHROMIUM, CHROMIUM_ARGS, streamlit_app, wait_idle

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    env = {"MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DATA_DIR": str(tmp_path / "data"),
           "MOESEARCH_DEVICE": "cpu", "MOESEARCH_HNSW_THRESHOLD": "0", ENV_VAR: admin_hash}
    with streamlit_app(env, tmp_path / "app.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

        def attempt(context, password: str) -> str:
            page = context.new_page()
            page.goto(f"{url}/ingest")
            wait_idle(page)
            page.get_by_label("Password", exact=True).fill(password)
            page.get_by_role("button", name="Sign in").click()
            wait_idle(page)
            text = page.inner_text("[data-testid='stMain']")
            page.close()
            return text

        first = browser.new_context()
        for i in range(auth.MAX_FAILURES):
            text = attempt(first, f"wrong guess {i}")
        assert "Too many wrong passwords" in text
        # new cookies, new session, another (forged) X-Forwarded-For: still locked out, even with the right password
        fresh = browser.new_context(extra_http_headers={"X-Forwarded-For": "198.51.100.23"})
        text = attempt(fresh, PASSWORD)
        assert "Too many wrong passwords" in text and "Documents, up to" not in text
        browser.close()
    assert os.path.exists(tmp_path / "app.log")


def test_card_header_names_slides_sheets_and_chapters():
    from app.snippets import card_header_html
    from indexer import relevance_label

    rel = relevance_label(0.5, None)
    assert "slide 2 of 5" in card_header_html(1, "d.pptx", 2, 5, "pptx", rel)
    assert "sheet 1 of 2" in card_header_html(1, "s.xlsx", 1, 2, "xlsx", rel)
    assert "chapter 3 of 9" in card_header_html(1, "b.epub", 3, 9, "epub", rel)
    assert "page 2 of 3" in card_header_html(1, "r.pdf", 2, 3, "pdf", rel)
