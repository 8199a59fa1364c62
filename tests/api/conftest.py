"""API fixtures: a pipeline on the shared tiny model in a tmp data folder, the API over it, an admin token."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import ApiSettings, create_app, runtime_for
from api.tokens import TokenStore
from indexer import IndexerSettings, Pipeline


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir):
    from embedder.runtime import Embedder

    return Embedder(tiny_model_dir, device="cpu")


@pytest.fixture
def data_dir(tmp_path):
    """In RAM (/dev/shm) where there is one: creating payload indexes fsyncs (see tests/indexer/conftest.py)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="moesearch-api-test-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "data"


@pytest.fixture
def roots(tmp_path) -> Path:
    folder = tmp_path / "roots"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(data_dir, tiny_model_dir, roots) -> IndexerSettings:
    return IndexerSettings(data_dir=data_dir, model_dir=tiny_model_dir, device="cpu", chunk_tokens=48,
                           chunk_overlap=8, batch_size=4, hnsw_threshold=0, max_file_mb=5,
                           ingest_embedding="in-process", ingest_roots=str(roots), sync_debounce_s=0.2,
                           sync_rescan_s=0)


@pytest.fixture
def pipeline(settings, tiny_embedder):
    with Pipeline(settings, embedder=tiny_embedder) as p:
        yield p


def _make_client(pipeline, settings, api: ApiSettings | None = None, sync: bool = True):
    runtime = runtime_for(lambda: pipeline, settings, api or ApiSettings(), sync=sync)
    runtime.start(wait=True)
    return runtime, TestClient(create_app(runtime), raise_server_exceptions=False)


@pytest.fixture
def make_client():
    """``make_client(pipeline, settings, api=None, sync=True)`` -> (started runtime, TestClient); close the runtime."""
    return _make_client


@pytest.fixture
def runtime_client(pipeline, settings):
    runtime, client = _make_client(pipeline, settings)
    try:
        yield runtime, client
    finally:
        runtime.close()


@pytest.fixture
def client(runtime_client) -> TestClient:
    return runtime_client[1]


@pytest.fixture
def token(settings) -> str:
    return TokenStore(settings.data_dir).create("test-admin")


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
