"""App fixtures: the environment the app reads (tiny model, tmp data folder, no admin hash unless a test sets
one), AppTest runners for each page, and an admin sign-in helper."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from app_helpers import PASSWORD

CLEARED = ("MOESEARCH_ADMIN_PASSWORD_HASH", "QDRANT_URL", "QDRANT_API_KEY", "MOESEARCH_BACKEND", "MOESEARCH_DIM",
           "MOESEARCH_KEEP_FILES", "MOESEARCH_MAX_FILE_MB", "MOESEARCH_TRUSTED_PROXIES", "MOESEARCH_SESSION_HOURS")


@pytest.fixture(scope="session")
def admin_hash() -> str:
    from app.auth import make_hash

    return make_hash(PASSWORD)


@pytest.fixture
def app_env(tmp_path, tiny_model_dir, monkeypatch) -> Path:
    """Environment for one app instance; the cached service is closed (store lock released) afterwards."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    for name, value in {"MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DATA_DIR": str(data),
                        "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
                        "MOESEARCH_BATCH_SIZE": "8", "MOESEARCH_HNSW_THRESHOLD": "0"}.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    yield data
    st.cache_resource.clear()
