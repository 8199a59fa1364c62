"""Index builds on the embedded store do not stop searches: the build runs in a child process on a copy of the
shard (``indexer/store/edge_build.py``) and the built copy is switched in; writes wait for it and are kept."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from indexer.store import edge_build
from indexer.store.base import CollectionSpec, Match, PointRecord, QuerySpec, StoreError
from indexer.store.edge import EdgeRoot

DIM, N = 64, 6000
SPEC = CollectionSpec(dim=DIM, keyword_fields=("kind",), indexing_threshold=500, quantization="int8")


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)  # (n, D)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ids(n: int, tag: str = "p") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}{i}")) for i in range(n)]


@pytest.fixture
def filled(data_dir):
    root = EdgeRoot(data_dir / "edge")
    col = root.create("moesearch-build", SPEC)
    vectors, ids = _vectors(N), _ids(N)
    for start in range(0, N, 500):
        col.upsert([PointRecord(ids[i], {"kind": "chunk"}, vectors[i]) for i in range(start, min(N, start + 500))])
    yield root, col, vectors, ids
    root.close()


def _build_while_searching(col, vectors, ids) -> tuple[dict, list[float]]:
    """``col.optimize()`` in a thread; searches in this one until it returns (every answer must be right).
    Returns the build's result and seconds, and each search's latency."""
    done = threading.Event()
    result: dict = {}

    def build() -> None:
        t0 = time.perf_counter()
        result["optimized"] = col.optimize()
        result["seconds"] = time.perf_counter() - t0
        done.set()

    latencies = []
    thread = threading.Thread(target=build)
    thread.start()
    i = 0
    while not done.is_set():
        t0 = time.perf_counter()
        hits = col.query(QuerySpec(limit=10, dense=vectors[i % N], hnsw_ef=64))
        latencies.append(time.perf_counter() - t0)
        assert hits and hits[0].id == ids[i % N]  # every answer during the build is right
        i += 1
        done.wait(0.005)  # pacing: a search every 5 ms while the build runs
    thread.join()
    return result, latencies


def test_searches_are_answered_while_the_index_is_built(filled):
    root, col, vectors, ids = filled
    before = [r.id for r in col.query(QuerySpec(limit=10, dense=vectors[7], exact=True))]
    result, latencies = _build_while_searching(col, vectors, ids)
    assert result["optimized"] is True and latencies
    assert col.unindexed() == 0 and col.count() == N
    assert [r.id for r in col.query(QuerySpec(limit=10, dense=vectors[7], exact=True))] == before
    assert not (root.folder / edge_build.BUILDING / col.name).exists()  # copy moved into place, old one removed
    assert not edge_build.old_dir(root.folder, col.name).exists()


@pytest.mark.slow  # wall-clock bounds: not in the default run
def test_searches_during_a_build_are_fast(filled):
    """An in-process build holds the GIL throughout: no search would be answered until it returned."""
    _, col, vectors, ids = filled
    result, latencies = _build_while_searching(col, vectors, ids)
    assert result["optimized"] is True
    assert len(latencies) >= 5, (len(latencies), result["seconds"])
    assert max(latencies) < max(1.0, result["seconds"] / 2), (max(latencies), result["seconds"])


def test_writes_during_a_build_wait_and_are_kept(filled):
    root, col, _, _ = filled
    extra, extra_ids = _vectors(50, seed=1), _ids(50, "extra")
    thread = threading.Thread(target=col.optimize)
    thread.start()
    started = root.folder / edge_build.BUILDING  # made under the collection's write lock, before the child starts
    deadline = time.monotonic() + 60
    while not started.exists() and thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.01)
    assert started.exists()
    col.upsert([PointRecord(extra_ids[i], {"kind": "late"}, extra[i]) for i in range(50)])  # waits for the switch
    thread.join()
    assert col.count([Match("kind", ("late",))]) == 50 and col.count() == N + 50
    root.close()
    again = EdgeRoot(root.folder)
    try:
        assert again.open(col.name).count() == N + 50  # on disk in the built shard
    finally:
        again.close()


def test_an_interrupted_switch_is_undone_when_the_collection_is_opened(filled):
    """A crash between the two renames leaves no shard in place and the old one aside: opening puts it back."""
    root, col, _, _ = filled
    col.flush()
    root.close()
    old = edge_build.old_dir(root.folder, col.name)
    old.parent.mkdir(parents=True, exist_ok=True)
    (root.folder / "collections" / col.name).rename(old)
    (edge_build.build_dir(root.folder, col.name)).mkdir()  # a half-built copy: thrown away
    again = EdgeRoot(root.folder)
    try:
        assert again.open(col.name).count() == N
        assert not old.exists() and not edge_build.build_dir(root.folder, col.name).exists()
        assert col.name in again.collections() and len(again.collections()) == 1
    finally:
        again.close()


def test_a_failed_build_keeps_the_shard_and_says_why(filled, monkeypatch):
    root, col, vectors, ids = filled

    def fail(src, dst, timeout=None):
        raise RuntimeError("index build failed (exit 1): No space left on device")

    monkeypatch.setattr(edge_build, "run_child", fail)
    with pytest.raises(StoreError, match="No space left"):
        col.optimize()
    assert col.count() == N and col.query(QuerySpec(limit=1, dense=vectors[3]))[0].id == ids[3]
