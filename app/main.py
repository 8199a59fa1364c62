"""The app's script: served by ``python -m app.server`` (``scripts/run.sh``; plain ``streamlit run app/main.py``
works too, without sign-ins that survive a reload). Sets up the page, the admin session and the navigation; the
pages do the rest.

The page scripts live in ``app/views/``, not ``app/pages/``: Streamlit treats a ``pages/`` folder next to the
entry point as a legacy multipage app, so a deep link such as ``/ingest`` would run the page without this file
(no navigation bar, no page config).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ (not the project) on sys.path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.auth import refresh_admin  # noqa: E402
from app.datafolder import data_folder_gate  # noqa: E402
from app.theme import theme_switch  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    # The favicon is a local file (sent inline): a ":material/...:" page icon makes the browser fetch it from Google's
    # font CDN, and nothing the app shows may leave this machine.
    st.set_page_config(page_title="moesearch", page_icon=HERE / "favicon.svg", layout="wide")
    st.set_option("client.toolbarMode", "viewer")  # no "Deploy" or developer menu for end users
    st.set_option("client.showErrorDetails", "type")  # an unexpected error never shows a traceback in the browser
    refresh_admin()  # a reload or a new tab: signed in again from the session cookie; a revoked sign-in ends here
    theme_switch()  # light / dark / system, in the top bar of every page
    data_folder_gate()  # a data folder that cannot be written: the app's own message on every page, not an OSError
    pages = [
        st.Page(HERE / "views" / "search.py", title="Search", icon=":material/search:", default=True),
        st.Page(HERE / "views" / "ingest.py", title="Ingest", icon=":material/upload_file:", url_path="ingest"),
        st.Page(HERE / "views" / "status.py", title="Status", icon=":material/monitor_heart:", url_path="status"),
    ]
    st.navigation(pages, position="top").run()


# Streamlit runs this script as a module named "__main__" (and leaves it installed as ``sys.modules["__main__"]``);
# a process the indexer spawns (a file reader, an embedding worker) re-runs the parent's main script as
# "__mp_main__", which must not build the app again in it (it loaded the model: ~1.2 GB and a dozen threads in
# every reader, which then failed small files "over the memory limit").
if __name__ == "__main__":
    main()
