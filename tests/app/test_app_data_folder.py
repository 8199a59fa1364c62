"""A data folder the app cannot write (read-only, full, no permission, a file in the way): every page shows the app's
own message (the folder, the cause, what the admin can do), never the service's raw OSError (issue 24 item 5).

The conditions are real: a folder without write permission (chmod, for a user that is not root), a read-only or a
full file system (a small tmpfs mounted for the test: root with the right to mount; skipped where that is refused,
as chmod does not stop root), a file where the folder should be; and a disk too full for an ingest
(``MOESEARCH_DISK_RESERVE_MB`` above the disk's free space: ``indexer/diskspace.py``'s refusal)."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from app_helpers import finish_job, open_page, sign_in, texts

from app.datafolder import DENIED, FULL, IN_THE_WAY, READ_ONLY, DataFolderProblem, probe, problem
from app.service import get_service

PAGES = (None, "views/ingest.py", "views/status.py")
RAW = ("Errno", "OSError", "Traceback", "could not start")


@contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False):
    """A small tmpfs mounted at ``where`` for the test (skipped where mounting is not allowed)."""
    where.mkdir(parents=True)
    options = f"size={size}" + (",ro" if read_only else "")
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({got.stderr.strip() or got.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)  # detached even if a file is still open


def assert_explained(cause_words: str, folder: Path) -> None:
    for page in PAGES:
        at = open_page(page)
        assert not at.exception, page
        shown = texts(at.error)
        assert "The search service cannot open its index." in shown, (page, shown)
        assert cause_words in shown and str(folder) in shown and "MOESEARCH_DATA_DIR" in shown, (page, shown)
        assert "The admin can" in shown and not any(raw in shown for raw in RAW), (page, shown)
        assert any(b.label == "Try again" for b in at.button)


def test_a_read_only_data_folder_is_explained(app_env, monkeypatch, tmp_path):
    if os.geteuid() != 0:  # chmod stops a user who is not root
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
        monkeypatch.setenv("MOESEARCH_DATA_DIR", str(folder / "data"))
        try:
            assert_explained("permission denied", folder / "data")
        finally:
            folder.chmod(0o755)
        return
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as mount:
        monkeypatch.setenv("MOESEARCH_DATA_DIR", str(mount / "data"))
        assert probe(mount / "data") == DataFolderProblem(READ_ONLY, mount)
        assert_explained("its file system is read-only", mount / "data")


def test_a_full_disk_is_explained_and_the_app_recovers_once_there_is_room(app_env, monkeypatch, tmp_path):
    with tmpfs(tmp_path / "small", "256k") as mount:
        filler = mount / "filler"
        with filler.open("wb") as f:  # fill the disk until it refuses: ENOSPC
            with pytest.raises(OSError, match="No space left"):
                while True:
                    f.write(bytes(64 << 10))
                    f.flush()
        monkeypatch.setenv("MOESEARCH_DATA_DIR", str(mount / "data"))
        assert probe(mount / "data").cause == FULL
        assert_explained("its disk is full", mount / "data")
    # what the admin is told to do (another data folder with room), then Try again: the search page works
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(app_env))
    at = open_page()
    assert not at.error and "The index is empty" in texts(at.info)


def test_a_file_where_the_data_folder_should_be_is_explained(app_env, monkeypatch, tmp_path):
    blocker = tmp_path / "data-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(blocker))
    assert_explained("a file is where a folder should be", blocker)
    at = open_page()
    blocker.unlink()  # the admin moved the file away: Try again opens the service
    at.button(key="data-folder-retry").click().run()
    assert not at.error and "The index is empty" in texts(at.info)


def test_problems_elsewhere_are_left_to_the_pages(tmp_path):
    data = tmp_path / "data"
    model_error = PermissionError(13, "Permission denied", str(tmp_path / "model" / "model.onnx"))
    assert problem(model_error, data) is None  # an unreadable model is not the data folder's problem
    assert problem(FileNotFoundError(2, "No such file", str(data / "x")), data) is None
    assert problem(ValueError("bad setting"), data) is None
    wrapped = RuntimeError("open failed")
    wrapped.__cause__ = OSError(30, "Read-only file system", str(data / "qdrant"))
    assert problem(wrapped, data) == DataFolderProblem(READ_ONLY, data / "qdrant")
    assert problem(OSError(13, "Permission denied", str(data)), data).cause == DENIED
    assert problem(NotADirectoryError(20, "Not a directory", str(data / "qdrant")), data).cause == IN_THE_WAY
    with pytest.raises(ValueError, match="unknown data folder problem"):
        DataFolderProblem("haunted", data)


def test_an_ingest_on_a_too_full_disk_is_refused_in_words(app_env, monkeypatch, admin_hash):
    from app.auth import ENV_VAR

    monkeypatch.setenv(ENV_VAR, admin_hash)
    monkeypatch.setenv("MOESEARCH_DISK_RESERVE_MB", str(1 << 40))  # more than any disk has free
    at = sign_in(open_page("views/ingest.py"))
    at.file_uploader[0].set_value([("notes.txt", b"The heron waited in the reeds.", "text/plain")]).run()
    finish_job(at.button(key="ingest-uploads").click().run())
    shown = texts(at.error)
    assert not at.exception and "not enough free disk space in" in shown and "nothing was written" in shown
    assert "MOESEARCH_DISK_RESERVE_MB" in shown and get_service().pipeline.stats().documents == 0
