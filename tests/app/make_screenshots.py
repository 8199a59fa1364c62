"""Screenshots of the app for the README and docs/: ``.venv/bin/python tests/app/make_screenshots.py [--out docs]``.

For each theme (the browser's colour scheme light, then dark: the app follows it), starts the app on a fresh data
folder with the default (shipped) model, loads the bundled sample corpus from the empty search page, searches,
signs in as admin, uploads two files (one of them not a document) and opens the status page, saving
``search.png``, ``empty-index.png``, ``ingest.png`` and ``status.png`` (light) and ``search-dark.png``, ... (dark).
Needs Chromium at /usr/bin/chromium and the Python package playwright.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_app, wait_charts, wait_idle  # noqa: E402

from app.auth import ENV_VAR, make_hash  # noqa: E402

NOTES = """Meeting notes, 12 March

The reading group discussed the Bill of Rights. Several members asked where the right to a speedy and public
trial comes from; it is the Sixth Amendment. Next time: Thoreau's Walden, chapter 2.
"""


SCHEMES = {"light": "", "dark": "-dark"}  # colour scheme -> file name suffix
PAGES = ("empty-index", "search", "ingest", "status")


def shoot(pw, out: Path, scheme: str, model: str | None, query: str) -> None:
    """One theme's screenshots, from a fresh app and data folder."""
    suffix = SCHEMES[scheme]
    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {"MOESEARCH_DATA_DIR": str(tmp / "data"), ENV_VAR: make_hash(password)}
        if model:
            env["MOESEARCH_MODEL"] = model
        (tmp / "reading-group-notes.txt").write_text(NOTES)
        (tmp / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
        with streamlit_app(env, tmp / "streamlit.log") as url:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1360, "height": 1300}, device_scale_factor=1,
                                          color_scheme=scheme)
            page = context.new_page()
            page.goto(url)
            page.get_by_role("button", name="Load the sample corpus").wait_for(timeout=60_000)
            wait_idle(page)
            page.screenshot(path=str(out / f"empty-index{suffix}.png"),
                            clip={"x": 0, "y": 0, "width": 1360, "height": 420})
            page.get_by_role("button", name="Load the sample corpus").click()
            box = page.get_by_placeholder("Ask a question or type some words...")
            box.wait_for(timeout=300_000)
            box.fill(query)
            box.press("Enter")
            page.get_by_text("Why these results").wait_for(timeout=60_000)
            wait_idle(page)
            page.get_by_text("Show surrounding text").first.click()  # show the first hit's surrounding text
            page.locator(".ms-context").first.wait_for(timeout=30_000)
            wait_idle(page)
            wait_charts(page, 2)
            page.screenshot(path=str(out / f"search{suffix}.png"), full_page=True)

            page.get_by_role("link", name="Ingest").click()
            page.get_by_label("Password", exact=True).fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
                [str(tmp / "reading-group-notes.txt"), str(tmp / "scan.png")])
            page.get_by_role("button", name="Ingest 2 files").click()
            page.get_by_text("Ingest finished").wait_for(timeout=300_000)
            wait_idle(page)
            page.screenshot(path=str(out / f"ingest{suffix}.png"), full_page=True)

            page.get_by_role("link", name="Status").click()
            page.get_by_text("Last ingest").wait_for(timeout=60_000)
            wait_idle(page)
            page.screenshot(path=str(out / f"status{suffix}.png"), full_page=True)
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--model", help="model folder (default: the shipped model)")
    parser.add_argument("--query", default="freedom of speech and of the press")
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="colour schemes: light, dark or both")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    schemes = [s for s in args.schemes.split(",") if s]
    bad = [s for s in schemes if s not in SCHEMES]
    if bad:
        parser.error(f"--schemes must be among {tuple(SCHEMES)}, got {bad}")
    with sync_playwright() as pw:
        for scheme in schemes:
            shoot(pw, args.out, scheme, args.model, args.query)
            for name in PAGES:
                print(args.out / f"{name}{SCHEMES[scheme]}.png")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
