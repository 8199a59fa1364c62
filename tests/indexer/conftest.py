"""Indexer fixtures: the shared tiny model's embedder (one per session) and pipelines on tmp folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from indexer.pipeline import Pipeline
from indexer.settings import IndexerSettings


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir):
    from embedder.runtime import Embedder

    return Embedder(tiny_model_dir, device="cpu")


@pytest.fixture
def data_dir(tmp_path):
    """The store folder: in RAM (/dev/shm) when there is one, since creating payload indexes fsyncs and
    costs ~0.2 s each on disk; behaviour is the same (a killed process leaves the same files either way)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="moesearch-test-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "data"


@pytest.fixture
def make_settings(data_dir, tiny_model_dir):
    def make(**overrides) -> IndexerSettings:
        values = dict(data_dir=data_dir, model_dir=tiny_model_dir, device="cpu", chunk_tokens=48,
                      chunk_overlap=8, batch_size=4, hnsw_threshold=0, max_file_mb=5)
        values.update(overrides)
        return IndexerSettings(**values)

    return make


@pytest.fixture
def pipeline(make_settings, tiny_embedder):
    with Pipeline(make_settings(), embedder=tiny_embedder) as p:
        yield p
