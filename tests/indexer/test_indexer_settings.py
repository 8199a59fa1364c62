from __future__ import annotations

from pathlib import Path

import pytest

from indexer.settings import IndexerSettings


def test_defaults_from_an_empty_environment():
    s = IndexerSettings.from_env({})
    assert s.data_dir == Path("data") and s.store_dir == Path("data/qdrant") and s.backend == "edge"
    assert (s.chunk_tokens, s.chunk_overlap, s.keep_files, s.collection) == (256, 32, "uploads", "moesearch")
    assert s.model_dir is None and s.max_file_bytes == 100 * 1024 * 1024


def test_environment_is_read():
    s = IndexerSettings.from_env({"MOESEARCH_DATA_DIR": "/srv/ms", "MOESEARCH_MODEL": "/m", "QDRANT_URL": "http://q:6333",
                                  "QDRANT_API_KEY": "k", "QDRANT_SHARDS": "3", "QDRANT_REPLICATION_FACTOR": "2",
                                  "QDRANT_WRITE_CONSISTENCY": "2", "MOESEARCH_CHUNK_TOKENS": "128",
                                  "MOESEARCH_CHUNK_OVERLAP": "16", "MOESEARCH_MAX_FILE_MB": "2.5",
                                  "MOESEARCH_HNSW_EF": "64", "MOESEARCH_DIM": "128"})
    assert s.backend == "server" and s.qdrant_url == "http://q:6333" and s.data_dir == Path("/srv/ms")
    assert (s.shard_number, s.replication_factor, s.write_consistency_factor) == (3, 2, 2)
    assert (s.chunk_tokens, s.chunk_overlap, s.hnsw_ef, s.dim) == (128, 16, 64, 128)
    assert s.max_file_bytes == int(2.5 * 1024 * 1024) and s.model_dir == Path("/m")
    assert s.describe()["qdrant_api_key"] == "***"


@pytest.mark.parametrize("env,message", [
    ({"MOESEARCH_BACKEND": "sqlite"}, "MOESEARCH_BACKEND must be one of"),
    ({"MOESEARCH_CHUNK_TOKENS": "abc"}, "MOESEARCH_CHUNK_TOKENS must be an integer"),
    ({"MOESEARCH_CHUNK_TOKENS": "64", "MOESEARCH_CHUNK_OVERLAP": "40"}, "MOESEARCH_CHUNK_OVERLAP must be in 0..31"),
    ({"MOESEARCH_KEEP_FILES": "some"}, "MOESEARCH_KEEP_FILES must be one of"),
    ({"MOESEARCH_MAX_FILE_MB": "0"}, "MOESEARCH_MAX_FILE_MB must be positive"),
    ({"MOESEARCH_DEVICE": "tpu"}, "MOESEARCH_DEVICE must be one of"),
    ({"QDRANT_COLLECTION": "a b"}, "QDRANT_COLLECTION"),
    ({"MOESEARCH_BM25_B": "2"}, "BM25"),
    ({"QDRANT_SHARDS": "0"}, "QDRANT_SHARDS must be >= 1"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        IndexerSettings.from_env(env)


def test_overrides_and_unknown_names():
    assert IndexerSettings.from_env({}, batch_size=8).batch_size == 8
    with pytest.raises(TypeError, match="unknown settings"):
        IndexerSettings.from_env({}, batchsize=8)


def test_messages_list_the_allowed_values_and_every_bad_variable():
    with pytest.raises(ValueError) as exc:
        IndexerSettings.from_env({"MOESEARCH_DEVICE": "tpu", "MOESEARCH_KEEP_FILES": "x", "MOESEARCH_DIM": "-1"})
    text = str(exc.value)
    assert "MOESEARCH_DEVICE must be one of ('auto', 'cpu', 'cuda'), got 'tpu'" in text
    assert "MOESEARCH_KEEP_FILES must be one of ('uploads', 'all', 'none')" in text
    assert "MOESEARCH_DIM must be positive" in text
    with pytest.raises(ValueError, match="QDRANT_SHARDS must be >= 1, got 0"):  # named by its variable here too
        IndexerSettings(shard_number=0)


def test_each_setting_has_one_variable_and_direct_construction_reads_no_environment(monkeypatch):
    variables = [info.validation_alias for info in IndexerSettings.model_fields.values()]
    assert all(variables) and len(set(variables)) == len(variables)
    monkeypatch.setenv("MOESEARCH_BATCH_SIZE", "7")
    monkeypatch.setenv("MOESEARCH_DIM", "")  # empty means unset
    assert IndexerSettings.from_env().batch_size == 7 and IndexerSettings.from_env().dim is None
    assert IndexerSettings().batch_size == 32 and IndexerSettings.from_env({}).batch_size == 32
    assert IndexerSettings.from_env(batch_size=9).batch_size == 9  # an override wins over the environment
    s = IndexerSettings(data_dir="~/d", chunk_tokens=48, chunk_overlap=8)
    assert s.data_dir == Path("~/d").expanduser() and s.with_(batch_size=4).batch_size == 4
    with pytest.raises(ValueError, match="MOESEARCH_CHUNK_OVERLAP must be in 0..23"):
        s.with_(chunk_overlap=30)
