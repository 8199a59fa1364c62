"""The app's server opens the search service at start from a thread of its own (``api.Runtime``, before any page
runs): that must not print Streamlit's "missing ScriptRunContext" warning at every start (a spinner there has no
page), and a page opened afterwards gets the same service."""

from __future__ import annotations

import threading

from app_helpers import open_page

from app.service import get_service


def test_opening_the_service_from_a_server_thread_is_quiet(app_env, capfd):
    capfd.readouterr()
    opened = []
    thread = threading.Thread(target=lambda: opened.append(get_service()), name="moesearch-api-open")
    thread.start()
    thread.join()
    assert opened and opened[0].pipeline is not None
    assert "ScriptRunContext" not in capfd.readouterr().err
    at = open_page()
    assert not at.exception
    assert get_service() is opened[0]
