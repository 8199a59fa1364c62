"""Start the app as ``scripts/run.sh`` does (``python -m app.server``: ``streamlit run`` of its ``st.App`` with the
session-cookie route) on a free port, for the browser tests and the screenshot script."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(env: dict[str, str], log_file: Path, timeout: float = 60.0):
    """Yield the base URL of a running app; stop it (by its pid) afterwards."""
    port = free_port()
    # The address (127.0.0.1) and usage statistics (off) come from the repository's .streamlit/config.toml, as for
    # scripts/run.sh: the privacy test checks what that configuration makes the browser do.
    cmd = [sys.executable, "-m", "app.server", "--server.headless", "true", "--server.port", str(port),
           "--server.fileWatcherType", "none", "--global.developmentMode", "false"]
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_idle(page, timeout: float = 60_000) -> None:
    """Until the browser session's script run is over (give a just-triggered rerun a moment to start)."""
    page.wait_for_timeout(300)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout)


def wait_charts(page, n: int, timeout: float = 30_000) -> None:
    """Until ``n`` Vega charts have drawn."""
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=stVegaLiteChart] canvas,"
                           f" [data-testid=stVegaLiteChart] svg.marks').length >= {n}", timeout=timeout)



def browser_env(model_dir: Path, data_dir: Path, admin_hash: str, **extra: str) -> dict[str, str]:
    """The app's environment for a browser test: the tiny model on CPU, its own store, the admin password hash."""
    from app.auth import ENV_VAR

    env = {"MOESEARCH_MODEL": str(model_dir), "MOESEARCH_DATA_DIR": str(data_dir), "MOESEARCH_DEVICE": "cpu",
           "MOESEARCH_CHUNK_TOKENS": "120", "MOESEARCH_CHUNK_OVERLAP": "16", "MOESEARCH_HNSW_THRESHOLD": "0",
           ENV_VAR: admin_hash}
    return {**env, **extra}


def new_page(browser, timeout_ms: float = 30_000, width: int = 1360, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    return page


def sign_in(page, url: str, password: str) -> None:
    """Open the Ingest page and sign in as the admin."""
    page.goto(f"{url}/ingest")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
