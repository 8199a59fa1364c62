"""The light / dark / system theme switch in the app's top bar (every page).

Streamlit keeps a viewer's theme choice in the browser (``localStorage``, the key its settings menu writes:
``stActiveTheme-<path the app was opened at>-v2`` holding ``"Light"``, ``"Dark"`` or ``"System"``) and reads it
when the app loads; it has no Python API to change it for one viewer.  The switch writes that same choice (for
the page's path, every path the browser holds a choice for, and every page of the navigation bar) and reloads the
page, which is what the menu's
Settings -> "Choose app theme" does without the reload; "System" follows the OS/browser colour scheme.  The
query and the mode are in the URL, and a sign-in in its cookie, so the reload keeps them.  A config file that
sets ``[theme] base`` would fix the theme for everyone (the switch then has no effect): ``.streamlit/config.toml``
sets none.
"""

from __future__ import annotations

import streamlit as st

CHOICES = (("System", "System", "Follow the system's light or dark setting"), ("Light", "Light", "Light theme"),
           ("Dark", "Dark", "Dark theme"))

# Fixed in the top bar, left of the app menu; its buttons use the theme's text colour (currentColor), so it reads
# on both themes. The element's own slot in the page is collapsed (the switch floats over the header).
CSS = """
.ms-theme {position:fixed; top:.7rem; right:3.6rem; z-index:1000001; display:flex; gap:.15rem; padding:.15rem;
  border-radius:.5rem; background:color-mix(in srgb, currentColor 8%, transparent); font-size:.75rem;}
.ms-theme button {font:inherit; color:inherit; background:transparent; border:0; border-radius:.4rem;
  padding:.15rem .5rem; cursor:pointer;}
.ms-theme button[aria-pressed="true"] {background:color-mix(in srgb, currentColor 18%, transparent);
  font-weight:600;}
.ms-theme button:focus-visible {outline:2px solid currentColor; outline-offset:1px;}
div[data-testid="stElementContainer"]:has(.ms-theme) {position:absolute; width:0; height:0; overflow:visible;}
"""

SCRIPT = """
(() => {
  const root = document.querySelector('.ms-theme');
  if (!root) return;
  const pattern = /^stActiveTheme-.*-v2$/;
  const own = `stActiveTheme-${window.location.pathname}-v2`;
  const read = () => {
    let value = localStorage.getItem(own);
    for (let i = 0; value === null && i < localStorage.length; i++) {
      if (pattern.test(localStorage.key(i))) value = localStorage.getItem(localStorage.key(i));
    }
    try { return JSON.parse(value) || 'System'; } catch (e) { return 'System'; }
  };
  const current = read();
  for (const button of root.querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(button.dataset.theme === current));
    button.addEventListener('click', () => {
      const keys = [own];  // this path, every path a choice was stored for, and every page of the navigation
      for (let i = 0; i < localStorage.length; i++) {
        if (pattern.test(localStorage.key(i))) keys.push(localStorage.key(i));
      }
      for (const link of document.querySelectorAll('[data-testid="stTopNav"] a[href], nav a[href]')) {
        keys.push(`stActiveTheme-${new URL(link.href, window.location.href).pathname}-v2`);
      }
      for (const key of keys) localStorage.setItem(key, JSON.stringify(button.dataset.theme));
      if (button.dataset.theme !== current) window.location.reload();
    });
  }
})();
"""


def switch_html() -> str:
    buttons = "".join(f'<button type="button" data-theme="{value}" title="{title}" aria-pressed="false">{label}'
                      "</button>" for value, label, title in CHOICES)
    return (f"<style>{CSS}</style>"
            f'<div class="ms-theme" role="group" aria-label="Theme">{buttons}</div><script>{SCRIPT}</script>')


def theme_switch() -> None:
    """The switch, on every page (called from ``main.py`` before the page runs)."""
    st.html(switch_html(), unsafe_allow_javascript=True)
