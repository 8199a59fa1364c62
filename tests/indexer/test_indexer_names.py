"""No silent replacement: a different upload under a name already indexed is kept as its own document unless the
admin asks to replace; names are made safe (the original kept for display); a cancelled ingest keeps what it
committed, rolls back the file in progress and reports the rest as not attempted."""

from __future__ import annotations

import threading

import pytest
from indexer_testfiles import sentences

from indexer import Source
from indexer.files import MAX_NAME, safe_name


def test_a_different_upload_under_the_same_name_is_kept_both(pipeline):
    first = pipeline.ingest([Source.upload("a.txt", b"the first note is about otters")]).files[0]
    second = pipeline.ingest([Source.upload("a.txt", b"the second note is about beavers")]).files[0]
    assert first.status == second.status == "ok"
    assert second.name == "a (2).txt" and second.doc_id != first.doc_id and not second.replaced
    assert "kept both" in second.reason
    assert {d.source for d in pipeline.documents()} == {"a.txt", "a (2).txt"}
    assert pipeline.search("otters", mode="keyword")[0].source == "a.txt"
    again = pipeline.ingest([Source.upload("a.txt", b"the second note is about beavers")]).files[0]
    assert again.status == "duplicate" and len(pipeline.documents()) == 2  # same bytes: nothing new, nothing lost


def test_same_name_pairs_within_one_batch(pipeline):
    report = pipeline.ingest([Source.upload("b.txt", b"walrus notes from the ice"),
                              Source.upload("b.txt", b"puffin notes from the cliffs"),
                              Source.upload("b.txt", b"gannet notes from the rocks")])
    assert [f.name for f in report.files] == ["b.txt", "b (2).txt", "b (3).txt"]
    assert [f.status for f in report.files] == ["ok"] * 3
    assert len({f.doc_id for f in report.files}) == 3 and len(pipeline.documents()) == 3


def test_replace_only_when_asked(pipeline):
    old = pipeline.ingest([Source.upload("c.txt", b"an old draft about lemurs")]).files[0]
    new = pipeline.ingest([Source.upload("c.txt", b"the final text about lemurs")], replace=True).files[0]
    assert new.status == "ok" and new.name == "c.txt" and new.replaced == (old.doc_id,)
    assert "replaced" in new.reason
    assert [d.doc_id for d in pipeline.documents()] == [new.doc_id]


def test_a_path_in_an_upload_name_replaces_nothing(pipeline):
    kept = pipeline.ingest([Source.upload("passwd.txt", b"the real list of kestrels")]).files[0]
    evil = pipeline.ingest([Source.named("../../x/passwd.txt", b"an attacker's text")]).files[0]
    assert evil.status == "ok" and evil.name == "_.._x_passwd.txt" and not evil.replaced
    docs = {d.source: d for d in pipeline.documents()}
    assert docs["passwd.txt"].doc_id == kept.doc_id
    assert "uploaded as '../../x/passwd.txt'" in docs["_.._x_passwd.txt"].notes[0]


@pytest.mark.parametrize("raw, safe", [
    ("a\\b.txt", "a_b.txt"),  # a backslash no longer cuts the name
    ("../../x/passwd.txt", "_.._x_passwd.txt"),
    ("in\u202evoice\u202c.txt", "invoice.txt"),  # bidi override out
    ("bell\x07\x00tab\t.txt", "belltab.txt"),
    ("zero\u200bwidth.txt", "zerowidth.txt"),
    ("...hidden", "hidden"),
    ("", "unnamed"),
    ("\x00\x01", "unnamed"),
    ("ok name.pdf", "ok name.pdf"),
])
def test_names_are_made_safe(raw, safe):
    assert safe_name(raw) == safe


def test_long_names_are_capped_keeping_the_extension():
    name = safe_name("x" * 1000 + ".docx")
    assert len(name) <= MAX_NAME and name.endswith(".docx")
    source = Source.named("y" * 1000 + ".txt", b"long")
    assert len(source.name) <= MAX_NAME and source.original == "y" * 1000 + ".txt"
    assert Source.named("plain.txt", b"x").original is None


def test_cancel_keeps_what_was_committed_and_rolls_back_the_file_in_progress(pipeline, tmp_path):
    files = []
    for i, topic in enumerate(("okapi", "narwhal", "axolotl")):
        path = tmp_path / f"f{i}.txt"
        path.write_text(sentences(40, i, topic))
        files.append(path)
    cancel = threading.Event()

    def progress(event):
        if event.stage == "embed" and event.files_done == 1 and event.chunks_done > 0:
            cancel.set()  # while the second file is being written

    report = pipeline.ingest(files, progress=progress, cancel=cancel)
    first, second, third = report.files
    assert first.status == "ok"
    assert second.status == "skipped" and "not attempted" in second.reason and "cancelled" in second.reason
    assert third.status == "skipped" and "not attempted" in third.reason
    assert [d.source for d in pipeline.documents()] == ["f0.txt"]
    stats = pipeline.stats()
    assert stats.chunks == first.chunks and stats.incomplete_chunks == 0  # nothing of the second file is left
    assert pipeline.search("narwhal", mode="keyword") == []
    again = pipeline.ingest(files)  # nothing lost: the rest goes in when ingested again
    assert [f.status for f in again.files] == ["duplicate", "ok", "ok"]


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_in_the_cli_cancels_the_ingest(tmp_path, tiny_model_dir, workers):
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(80 * workers):
        (folder / f"n{i:03}.txt").write_text(sentences(60, i, f"topic{i}"))
    env = {**os.environ, "MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DATA_DIR": str(tmp_path / "data"),
           "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8",
           "MOESEARCH_BATCH_SIZE": "2", "MOESEARCH_HNSW_THRESHOLD": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "indexer", "-v", "ingest", str(folder), "--json", "--workers",
                             str(workers)], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    early = []
    if workers > 1:  # Ctrl-C while the workers embed
        for line in proc.stderr:
            early.append(line)
            if "embedding workers" in line:
                break
    else:
        deadline = time.monotonic() + 60
        while not (tmp_path / "data" / "qdrant").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    # the store is open or the workers run: the Ctrl-C handler is set (before the store is opened), and every child
    # process ignores SIGINT from its start (indexer/children.py)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to the whole process group, workers included
    out, err = proc.communicate(timeout=120)
    err = "".join(early) + err
    assert proc.returncode == 130, err[-2000:]
    import json

    report = json.loads(out)
    states = [f["status"] for f in report["files"]]
    assert "skipped" in states and all(f["reason"].startswith("not attempted") for f in report["files"]
                                       if f["status"] == "skipped")
    assert "Traceback" not in err and "restarting the pool" not in err, err[-3000:]  # Ctrl-C is the parent's
    stats = subprocess.run([sys.executable, "-m", "indexer", "stats", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)
    got = json.loads(stats.stdout)
    assert got["documents"] == states.count("ok") and got["incomplete_chunks"] == 0
