"""Disk-full and read-only safety, on a small tmpfs (needs root to mount; skipped with the reason otherwise): the
ingest refuses before writing when the batch, the store's sparse reservations and the reserve do not fit; every
command ends with one line and an exit code (never SIGBUS, never a traceback); after space returns nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from indexer_testfiles import sentences

from indexer.diskspace import holes, needed_bytes


@contextmanager
def tmpfs(folder, size: str):
    folder.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                         text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({got.stderr.strip() or 'mount failed'}); run as root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def cli(env, *args):
    got = subprocess.run([sys.executable, "-m", "indexer", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert got.returncode >= 0, f"killed by signal {-got.returncode}: {got.stderr[-2000:]}"  # no SIGBUS
    assert "Traceback" not in got.stderr, got.stderr[-3000:]
    return got


@pytest.fixture
def env(tmp_path, tiny_model_dir):
    def make(data):
        return {**os.environ, "MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DATA_DIR": str(data),
                "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
                "MOESEARCH_BATCH_SIZE": "8", "MOESEARCH_HNSW_THRESHOLD": "0", "MOESEARCH_DISK_RESERVE_MB": "8"}

    return make


def test_estimate_counts_sparse_holes_and_caps_per_file(tmp_path):
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as fh:
        fh.truncate(50 << 20)  # 50 MB of file size, nothing allocated
    assert holes(tmp_path) >= 49 << 20
    assert needed_bytes([1000], 10, keep_copies=True) == 16 * 1000 + 1000
    assert needed_bytes([10**9], 10, keep_copies=False) == 10 * 10 * 1024  # at most what the chunk cap allows


def test_full_disk_refuses_cleanly_and_nothing_is_lost(tmp_path, env):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keep.txt").write_text(sentences(12, 7, "okapi"))
    (docs / "good.txt").write_text(sentences(12, 8, "narwhal"))
    with tmpfs(tmp_path / "disk", "600m") as disk:
        e = env(disk / "data")
        assert cli(e, "ingest", str(docs / "keep.txt")).returncode == 0
        refused = cli({**e, "MOESEARCH_DISK_RESERVE_MB": "1000"}, "ingest", str(docs / "good.txt"))
        assert refused.returncode == 2
        assert "not enough free disk space" in refused.stderr and "MOESEARCH_DISK_RESERVE_MB" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        stats = cli(e, "stats", "--json")
        assert stats.returncode == 0 and json.loads(stats.stdout)["documents"] == 1
        hit = cli(e, "search", "okapi", "--mode", "keyword", "--json")
        assert hit.returncode == 0 and json.loads(hit.stdout)[0]["source"] == "keep.txt"
        used = shutil.disk_usage(disk).used
        remount(disk, f"size={used // 2**20 + 16}m")  # less than the store's sparse files may need (SIGBUS risk)
        got = cli(e, "ingest", str(docs / "good.txt"))
        assert got.returncode == 2 and "not enough free disk space to open the index" in got.stderr, got.stderr
        assert len(got.stderr.strip().splitlines()) == 1
        # reading still works, from a copy in the scratch folder (the system temp folder has room)
        hit = cli(e, "search", "okapi", "--mode", "keyword", "--json")
        assert hit.returncode == 0 and json.loads(hit.stdout)[0]["source"] == "keep.txt", hit.stderr
        assert "reading a copy of the index" in hit.stderr
        assert json.loads(cli(e, "stats", "--json").stdout)["documents"] == 1
        assert not list(Path(tempfile.gettempdir()).glob("moesearch-readonly-*/qdrant"))  # the copies are gone
        no_room = cli({**e, "MOESEARCH_SCRATCH_DIR": str(disk / "scratch")}, "search", "okapi")
        assert no_room.returncode == 2 and "MOESEARCH_SCRATCH_DIR" in no_room.stderr, no_room.stderr
        assert len(no_room.stderr.strip().splitlines()) == 1
        remount(disk, "size=600m")
        filler = disk / "filler.bin"  # another program fills the disk to the last byte
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            except OSError:
                pass
        for args in (("stats",), ("search", "okapi", "--mode", "keyword"), ("ingest", str(docs / "good.txt"))):
            got = cli(e, *args)
            assert got.returncode in (0, 2), (args, got.returncode, got.stderr)
            if got.returncode:
                assert got.stderr.startswith("error: ") and len(got.stderr.strip().splitlines()) == 1, got.stderr
        filler.unlink()
        remount(disk, "size=600m")  # space is back
        assert cli(e, "ingest", str(docs / "good.txt")).returncode == 0
        listed = json.loads(cli(e, "documents", "--json").stdout)
        assert sorted(d["source"] for d in listed) == ["good.txt", "keep.txt"]
        assert json.loads(cli(e, "search", "okapi", "--mode", "keyword", "--json").stdout)[0]["source"] == "keep.txt"
        assert json.loads(cli(e, "stats", "--json").stdout)["incomplete_chunks"] == 0


def test_read_only_data_folder_gives_one_line(tmp_path, env):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keep.txt").write_text(sentences(12, 7, "okapi"))
    with tmpfs(tmp_path / "ro", "600m") as disk:
        e = env(disk / "data")
        assert cli(e, "ingest", str(docs / "keep.txt")).returncode == 0
        remount(disk, "ro")
        for args in (("ingest", str(docs / "keep.txt")), ("delete", "keep.txt"), ("reindex", "--force")):
            got = cli(e, *args)
            assert got.returncode == 2, (args, got.stderr)
            assert got.stderr.startswith("error: ") and len(got.stderr.strip().splitlines()) == 1, got.stderr
            assert "read-only" in got.stderr
        hit = cli(e, "search", "okapi", "--mode", "keyword", "--json")  # search works, from a copy
        assert hit.returncode == 0 and json.loads(hit.stdout)[0]["source"] == "keep.txt", hit.stderr
        assert json.loads(cli(e, "stats", "--json").stdout)["documents"] == 1
        assert json.loads(cli(e, "documents", "--json").stdout)[0]["source"] == "keep.txt"
        remount(disk, "rw")
        listed = json.loads(cli(e, "documents", "--json").stdout)
        assert [d["source"] for d in listed] == ["keep.txt"]
