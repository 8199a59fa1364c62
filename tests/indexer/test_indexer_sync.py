"""Synced folders (indexer/sync.py): files created, edited, renamed and deleted in a watched folder reach the index
while searches run; a bad file fails alone and is retried only when it changes; the state survives a restart."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from indexer import IndexerError, Syncer, add_synced_folder, remove_synced_folder, synced_folders

DEADLINE_S = 60.0  # how long a file-system change may take to reach the index


def wait_for(condition, what: str, timeout: float = DEADLINE_S):
    """Poll ``condition`` until it is truthy (file-system events arrive asynchronously), or fail naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def text(topic: str, n: int = 12) -> str:
    return " ".join(f"{topic} sentence {i} about {topic} and its properties." for i in range(n))


def by_path(pipeline) -> dict[str, object]:
    return {d.path: d for d in pipeline.documents()}


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "roots" / "synced"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def sync_settings(make_settings, folder):
    return make_settings(ingest_roots=str(folder.parent), sync_debounce_s=0.2, sync_rescan_s=0,
                         ingest_embedding="in-process")


@pytest.fixture
def syncer(pipeline, sync_settings):
    s = Syncer(pipeline, sync_settings)
    yield s
    s.stop()


class Searcher(threading.Thread):
    """Searches without pause until stopped; counts searches and keeps any error."""

    def __init__(self, pipeline):
        super().__init__(daemon=True)
        self.pipeline, self.stop, self.errors, self.count = pipeline, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.pipeline.search("sentence about properties", k=5)
                self.count += 1
            except Exception as exc:  # recorded for the assertion
                self.errors.append(repr(exc))


def test_create_edit_rename_delete_reach_the_index_while_searches_run(pipeline, syncer, folder):
    syncer.start()
    syncer.add(folder)
    searcher = Searcher(pipeline)
    searcher.start()
    a, b = folder / "a.txt", folder / "sub" / "b.md"
    b.parent.mkdir()
    a.write_text(text("proteins"))
    b.write_text(text("galaxies"))
    wait_for(lambda: {str(a), str(b)} <= set(by_path(pipeline)), "two new files indexed")

    old_a = by_path(pipeline)[str(a)].doc_id
    a.write_text(text("ribosomes"))
    wait_for(lambda: by_path(pipeline).get(str(a)) and by_path(pipeline)[str(a)].doc_id != old_a, "the edit")
    assert sum(1 for d in pipeline.documents() if d.path == str(a)) == 1  # the old version was replaced

    before = by_path(pipeline)[str(b)]
    c = folder / "c.md"
    b.rename(c)
    wait_for(lambda: str(c) in by_path(pipeline) and str(b) not in by_path(pipeline), "the rename")
    moved = by_path(pipeline)[str(c)]
    assert (moved.doc_id, moved.ingested_at) == (before.doc_id, before.ingested_at)  # moved, not re-embedded
    assert moved.source == "c.md"
    assert {h.source for h in pipeline.search("galaxies", k=50, mode="keyword")} == {"c.md"}

    a.unlink()
    wait_for(lambda: set(by_path(pipeline)) == {str(c)}, "the delete")
    state = synced_folders(syncer.settings)[0]
    assert (state.path, state.indexed, state.failed, state.last_error) == (str(folder), 1, 0, None)
    searcher.stop.set()
    searcher.join()
    assert searcher.errors == [] and searcher.count > 0


def test_a_bad_file_fails_alone_and_is_retried_only_when_it_changes(pipeline, syncer, folder):
    bad, good = folder / "bad.txt", folder / "good.txt"
    bad.write_bytes(b"")  # an empty file fails
    good.write_text(text("enzymes"))
    syncer.add(folder)
    report = syncer.sync(str(folder))
    assert (report.ingested, report.failed) == (1, 1)
    state = synced_folders(syncer.settings)[0]
    assert state.failed == 1 and state.failures[0][0] == str(bad) and "empty file" in state.failures[0][1]

    os.utime(bad, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, not changed: not tried again
    assert syncer.sync(str(folder)).failed == 0
    assert synced_folders(syncer.settings)[0].failed == 1

    bad.write_text(text("repaired"))
    report = syncer.sync(str(folder))
    assert (report.ingested, report.failed) == (1, 0)
    assert str(bad) in by_path(pipeline) and synced_folders(syncer.settings)[0].failed == 0


def test_what_a_folder_ingest_skips_is_skipped_not_failed(pipeline, syncer, folder):
    (folder / "tool.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 50)
    (folder / "tool").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 60)
    (folder / "README").write_text(text("moraines"))
    syncer.add(folder)
    report = syncer.sync(str(folder))
    assert (report.ingested, report.failed) == (1, 0)
    state = synced_folders(syncer.settings)[0]
    assert (state.files, state.indexed, state.skipped, state.failed) == (3, 1, 2, 0)
    assert str(folder / "README") in by_path(pipeline)


def test_the_state_survives_a_restart_and_catches_up(pipeline, sync_settings, folder):
    keep, gone, moved = folder / "keep.txt", folder / "gone.txt", folder / "old-name.txt"
    for path, topic in ((keep, "mitochondria"), (gone, "comets"), (moved, "glaciers")):
        path.write_text(text(topic))
    first = Syncer(pipeline, sync_settings)
    first.add(folder)
    assert first.sync(str(folder)).ingested == 3
    glacier_id = by_path(pipeline)[str(moved)].doc_id
    first.stop()

    gone.unlink()  # while no syncer runs
    moved.rename(folder / "new-name.txt")
    (folder / "fresh.txt").write_text(text("volcanoes"))

    second = Syncer(pipeline, sync_settings)
    second.start()  # a start syncs every folder
    try:
        expected = {str(keep), str(folder / "new-name.txt"), str(folder / "fresh.txt")}
        wait_for(lambda: set(by_path(pipeline)) == expected, "the catch-up after a restart")
        assert by_path(pipeline)[str(folder / "new-name.txt")].doc_id == glacier_id
        wait_for(lambda: synced_folders(sync_settings)[0].last_report is not None, "the report")
    finally:
        second.stop()


def test_only_folders_within_the_ingest_roots(syncer, tmp_path):
    with pytest.raises(ValueError, match="outside the folders allowed by MOESEARCH_INGEST_ROOTS"):
        syncer.add(tmp_path)
    with pytest.raises(ValueError, match="no file or folder"):
        syncer.add(tmp_path / "roots" / "missing")


def test_pages_register_folders_through_the_running_syncer_or_the_state(pipeline, sync_settings, folder):
    (folder / "a.txt").write_text(text("lichens"))
    added = add_synced_folder(sync_settings, folder)  # no syncer runs here: recorded for the owner's start
    assert (added.path, added.last_sync) == (str(folder), None) and pipeline.documents() == []
    remove_synced_folder(sync_settings, folder)
    assert synced_folders(sync_settings) == []
    with pytest.raises(IndexerError, match="not a synced folder"):
        remove_synced_folder(sync_settings, folder)

    running = Syncer(pipeline, sync_settings)
    running.start()
    try:
        add_synced_folder(sync_settings, folder)  # the running syncer takes it and syncs it at once
        wait_for(lambda: str(folder / "a.txt") in by_path(pipeline), "the page's folder synced")
        remove_synced_folder(sync_settings, folder)
        assert synced_folders(sync_settings) == [] and str(folder / "a.txt") in by_path(pipeline)  # docs stay
    finally:
        running.stop()
