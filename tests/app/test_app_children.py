"""The processes the indexer spawns from the app (file readers, embedding workers) start small: Streamlit leaves
the app's script installed as ``__main__``, which a spawned child re-runs as ``__mp_main__``; the script builds the
app only as ``__main__`` (``app/main.py``), so a child does not load the model or run a page."""

from __future__ import annotations

import sys

from app_helpers import MAIN, open_page

from indexer.sandbox import Reader

FRESH_MB = 250  # a reader is ~60 MB once started; one that re-ran the app was ~1.2 GB


def test_a_reader_spawned_by_the_app_does_not_run_the_app(app_env, capfd):
    at = open_page()
    assert not at.exception
    assert getattr(sys.modules["__main__"], "__file__", None) == str(MAIN)  # as Streamlit leaves it
    capfd.readouterr()
    reader = Reader()
    try:
        reader.start()  # its stderr is this process's (fd 2): a Streamlit call in it says "missing ScriptRunContext"
        assert reader.base_rss < FRESH_MB * 2**20, reader.base_rss / 2**20
    finally:
        reader.close()
    assert "ScriptRunContext" not in capfd.readouterr().err
