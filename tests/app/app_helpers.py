"""Helpers for the app tests (AppTest runners, sign-in, element text)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "main.py"
PASSWORD = "correct horse battery staple"


def open_page(page: str | None = None, secrets: dict | None = None):
    """Run the app, then switch to ``page`` ("views/ingest.py", ...) and run it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN), default_timeout=60)
    if secrets:
        at.secrets.update(secrets)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def sign_in(at, password: str = PASSWORD):
    at.text_input(key="password").set_value(password)
    at.form_submit_button[0].click().run()
    return at


def htmls(at) -> list[str]:
    return [e.value for e in at.get("html")]


def plain(markdown: str) -> str:
    """Markdown text without the backslash escapes the app adds to untrusted parts."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(elements) -> str:
    return plain("\n".join(str(e.value) for e in elements))


def finish_job(at, timeout: float = 60.0):
    """Wait for the background job this session started, then rerun the page to show its report."""
    job = at.session_state["job"]
    assert job is not None and job.wait(timeout), "the job did not finish"
    return at.run()
