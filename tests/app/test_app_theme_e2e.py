"""Light and dark in a real browser: with the browser's colour scheme light and dark (the app follows the system by
default), the WCAG contrast ratio of the result text, the ``<mark>`` highlights, the badges (file type, place,
relevance), the surrounding text and the "why these results" panel against what is actually behind them, from
their computed styles, is at least 4.5:1; the theme switch in the top bar changes the theme and keeps it."""

from __future__ import annotations

import pytest
from app_server import CHROMIUM, CHROMIUM_ARGS, browser_env, streamlit_app, wait_idle

pytestmark = pytest.mark.e2e
AA = 4.5  # WCAG 2 level AA, normal text

# Contrast of every element matching a selector, from computed styles: the text colour (alpha and ancestors'
# opacity applied) over the element's effective background (its and its ancestors' background colours
# composited, from the first opaque one up). Colours are resolved by a 1x1 canvas, so any CSS colour syntax the
# computed style uses (rgb(), color(srgb ...) from color-mix) is read the same way.
CONTRAST = """(selectors) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = 'rgb(1, 2, 3)';
    ctx.fillStyle = css;
    if (ctx.fillStyle === '#010203' && !/^rgb\\(1, 2, 3\\)$/.test(css)) throw new Error('unparsed colour ' + css);
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, below) => [0, 1, 2].map(i => top[3] * top[i] + (1 - top[3]) * below[i]);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let rgb = [255, 255, 255];
    for (const layer of layers.reverse()) rgb = over(layer, rgb);
    return rgb;
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map(v => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const out = {};
  for (const [name, selector] of Object.entries(selectors)) {
    out[name] = [];
    for (const el of document.querySelectorAll(selector)) {
      const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
      if (!text || !el.getClientRects().length) continue;
      let opacity = 1;
      for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
      const fg = rgba(getComputedStyle(el).color);
      const bg = background(el);
      const ink = over([fg[0], fg[1], fg[2], fg[3] * opacity], bg);
      const [hi, lo] = [luminance(ink), luminance(bg)].sort((a, b) => b - a);
      out[name].push({text: text.slice(0, 40), ratio: (hi + 0.05) / (lo + 0.05), color: getComputedStyle(el).color,
                      background: bg.map(Math.round).join(',')});
    }
  }
  out.app = luminance(background(document.querySelector('[data-testid="stApp"]')));
  return out;
}"""

PANEL = '[data-testid="stColumn"]:has(h4) '  # the "why these results" column
SELECTORS = {
    "result text": ".ms-snippet",
    "highlight": ".ms-snippet mark, .ms-context mark",
    "file name": ".ms-source",
    "rank": ".ms-rank",
    "badge": ".ms-badge",
    "relevance": ".ms-rel",
    "more passages": ".ms-more, .ms-where",
    "surrounding text": ".ms-context .ms-near, .ms-context .ms-hit",
    "routing panel": ", ".join(PANEL + s for s in ("h4", "p", "span", "li", "summary", "code")),
    "theme switch": ".ms-theme button",
}
MUST_FIND = ("result text", "highlight", "file name", "badge", "relevance", "surrounding text", "routing panel",
             "theme switch")


def _need_browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    return sync_playwright


def _search(page, url: str, query: str) -> None:
    page.goto(url)
    box = page.get_by_placeholder("Ask a question or type some words...")
    box.fill(query)
    box.press("Enter")
    page.get_by_text("Why these results").wait_for()
    wait_idle(page)
    page.get_by_text("Show surrounding text").first.click()
    page.locator(".ms-context").first.wait_for()
    wait_idle(page)


def _app_luminance(page) -> float:
    return page.evaluate(CONTRAST, {})["app"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_model_dir):
    """The app on the bundled sample corpus (loaded from the empty search page, as a first user would)."""
    from app.auth import make_hash

    tmp = tmp_path_factory.mktemp("theme")
    env = browser_env(tiny_model_dir, tmp / "data", make_hash("not used here"))
    sync_playwright = _need_browser()
    with streamlit_app(env, tmp / "streamlit.log") as url:
        with sync_playwright() as pw:  # closed before the tests open their own
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("button", name="Load the sample corpus").click()
            page.get_by_placeholder("Ask a question or type some words...").wait_for(timeout=180_000)
            browser.close()
        yield url


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_results_and_routing_panel_read_at_aa_contrast(app_url, scheme):
    sync_playwright = _need_browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(color_scheme=scheme, viewport={"width": 1360, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            _search(page, app_url, "the right of the people to be secure against unreasonable searches")
            found = page.evaluate(CONTRAST, SELECTORS)
        finally:
            browser.close()
    # the theme followed the browser's scheme: a dark page is dark, a light one light
    assert (found.pop("app") < 0.05) == (scheme == "dark")
    missing = [name for name in MUST_FIND if not found[name]]
    assert not missing, f"nothing measured for {missing}"
    low = {name: [r for r in rows if r["ratio"] < AA] for name, rows in found.items()}
    low = {name: rows for name, rows in low.items() if rows}
    assert not low, f"below {AA}:1 in the {scheme} theme: {low}"


def test_theme_switch_changes_and_keeps_the_theme(app_url):
    sync_playwright = _need_browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(color_scheme="light").new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{app_url}/status")
            switch = page.locator(".ms-theme")
            switch.wait_for()
            wait_idle(page)
            assert switch.locator("button[aria-pressed=true]").inner_text() == "System"
            assert _app_luminance(page) > 0.8
            with page.expect_navigation():  # the choice is stored, and the page loads again in it
                switch.get_by_role("button", name="Dark").click()
            page.locator(".ms-theme button[aria-pressed=true]").wait_for()
            wait_idle(page)
            assert page.locator(".ms-theme button[aria-pressed=true]").inner_text() == "Dark"
            assert _app_luminance(page) < 0.05
            page.goto(app_url)  # another page, and a new visit: still dark
            page.locator(".ms-theme button[aria-pressed=true]").wait_for()
            wait_idle(page)
            assert _app_luminance(page) < 0.05
            with page.expect_navigation():
                page.locator(".ms-theme").get_by_role("button", name="System").click()
            page.locator(".ms-theme button[aria-pressed=true]").wait_for()
            wait_idle(page)
            assert _app_luminance(page) > 0.8  # the system (the browser's light scheme) again
        finally:
            browser.close()
