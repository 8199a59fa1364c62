"""Ingest page through AppTest: the password gate, uploads (good and bad), folder ingest, delete, re-index."""

from __future__ import annotations

from app_helpers import PASSWORD, finish_job, open_page, plain, sign_in, texts

from app.auth import ENV_VAR, fingerprint
from app.sample import SAMPLE_DIR, sample_files
from app.service import get_service

INGEST = "views/ingest.py"
GOOD = ("kestrel-notes.txt", b"The kestrel hovered over the meadow, hunting voles at dawn.", "text/plain")


def _report(at):
    """The per-file report table as {file: (status, reason)}."""
    frames = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return {r.file: (r.status, r.reason) for r in frames[0].itertuples()}


def test_no_hash_configured_gives_a_clear_page_and_no_upload(app_env):
    at = open_page(INGEST)
    assert not at.exception
    assert at.title[0].value == "Admin sign-in is not set up"
    assert ENV_VAR in texts(at.markdown) and "python -m app.auth" in texts(at.markdown)
    assert not at.file_uploader and not at.text_input


def test_malformed_hash_is_reported_not_accepted(app_env, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "sha1$abc")
    at = open_page(INGEST)
    assert at.title[0].value == "Admin sign-in is misconfigured"
    assert "not a valid password hash" in texts(at.error) and not at.file_uploader


def test_wrong_password_is_refused_and_the_right_one_admits(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = open_page(INGEST)
    assert at.title[0].value == "Admin sign-in" and not at.file_uploader
    sign_in(at, "password123")
    assert "Wrong password." in texts(at.error) and not at.file_uploader
    assert "admin" not in at.session_state
    sign_in(at, "")
    assert "Enter the admin password." in texts(at.error) and not at.file_uploader
    sign_in(at, PASSWORD)
    assert not at.error and at.file_uploader and at.session_state["admin"] == fingerprint(admin_hash)
    # signing out closes the admin page again
    at.button(key="sign-out").click().run()
    assert at.title[0].value == "Admin sign-in" and not at.file_uploader


def test_changing_the_hash_signs_sessions_out(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = sign_in(open_page(INGEST))
    assert at.file_uploader
    from app.auth import make_hash

    monkeypatch.setenv(ENV_VAR, make_hash("another password"))
    at.run()
    assert at.title[0].value == "Admin sign-in" and not at.file_uploader


def test_hash_from_streamlit_secrets(app_env, admin_hash):
    at = sign_in(open_page(INGEST, secrets={ENV_VAR: admin_hash}))
    assert not at.error and at.file_uploader


def test_bad_uploads_fail_alone_and_good_ones_are_ingested(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    monkeypatch.setenv("MOESEARCH_MAX_FILE_MB", "0.01")  # ~10 KB
    at = sign_in(open_page(INGEST))
    uploader = at.file_uploader[0]
    uploader.set_value([
        GOOD,
        ("holiday.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
        ("empty.txt", b"", "text/plain"),
        ("huge.txt", b"word " * 4000, "text/plain"),  # 20 KB, over the cap
        ("bill-of-rights.pdf", (SAMPLE_DIR / "bill-of-rights.pdf").read_bytes()[:900], "application/pdf"),
    ]).run()
    button = at.button(key="ingest-uploads")
    assert button.label == "Ingest 5 files" and not button.disabled
    button.click().run()
    assert not at.file_uploader[0].value  # the batch left the uploader as the ingest started
    finish_job(at)
    assert not at.exception
    report = _report(at)
    assert report["kestrel-notes.txt"] == ("ok", "")
    assert report["holiday.png"][0] == "failed" and "PNG image" in report["holiday.png"][1]
    assert report["empty.txt"][0] in ("failed", "skipped") and report["empty.txt"][1]
    assert report["huge.txt"][0] == "failed" and "size cap" in report["huge.txt"][1]
    assert report["bill-of-rights.pdf"][0] == "failed" and report["bill-of-rights.pdf"][1]
    assert "1 ingested" in texts(at.warning)
    progress = at.get("progress")
    assert progress and progress[-1].value == 100 and "Ingest finished: 5 uploaded files" in plain(progress[-1].text)
    # what was good is searchable, the failures left nothing behind
    service = get_service()
    assert [d.source for d in service.pipeline.documents()] == ["kestrel-notes.txt"]
    hits = service.pipeline.search("kestrel voles", k=3, mode="keyword")
    assert hits and hits[0].source == "kestrel-notes.txt"
    assert service.last_report["ok"] == 1 and service.last_report["failed"] >= 3
    # the same file again is a duplicate
    at.file_uploader[0].set_value([GOOD]).run()
    finish_job(at.button(key="ingest-uploads").click().run())
    assert _report(at)["kestrel-notes.txt"][0] == "skipped (duplicate)"


def test_folder_ingest_delete_and_reindex(app_env, monkeypatch, admin_hash, tmp_path):
    import os
    import shutil

    folder = tmp_path / "corpus"
    folder.mkdir()
    for path in sample_files():
        shutil.copy(path, folder)
    (folder / "setup.exe").write_bytes(b"MZ\x90\x00" + b"\x00" * 60)
    monkeypatch.setenv(ENV_VAR, admin_hash)
    monkeypatch.setenv("MOESEARCH_INGEST_ROOTS", f"{folder}{os.pathsep}/no")
    at = sign_in(open_page(INGEST))
    at.text_input(key="folder").set_value("/no/such/folder").run()
    at.button(key="ingest-folder").click().run()
    assert "There is no file or folder '/no/such/folder'" in texts(at.error)

    at.text_input(key="folder").set_value(str(folder)).run()
    finish_job(at.button(key="ingest-folder").click().run())
    report = _report(at)
    assert all(report[p.name][0] == "ok" for p in sample_files())
    assert report["setup.exe"][0] == "skipped"  # not a document type: reported, not silently ignored
    assert "Documents (6)" in texts(at.markdown)

    docs = {d.source: d.doc_id for d in get_service().pipeline.documents()}
    at.multiselect(key="delete_ids").set_value([docs["walden-where-i-lived.txt"]]).run()
    at.button(key="delete").click().run()
    assert "Delete 1 document: walden-where-i-lived.txt?" in texts(at.warning)  # asked first
    assert get_service().pipeline.stats().documents == 6
    at.button(key="delete-confirm").click().run()
    assert "Deleted 1 document: walden-where-i-lived.txt" in texts(at.success)
    assert not at.multiselect(key="delete_ids").value and not [b for b in at.button if b.key == "delete-confirm"]
    assert "Documents (5)" in texts(at.markdown)
    assert "walden-where-i-lived.txt" not in {d.source for d in get_service().pipeline.documents()}
    hits = get_service().pipeline.search("live deliberately marrow", k=10, mode="keyword")
    assert all(h.source != "walden-where-i-lived.txt" for h in hits)

    finish_job(at.button(key="reindex").click().run())
    assert not at.exception and not at.error
    assert "Reindex finished: all documents" in plain(at.get("progress")[-1].text)
    assert get_service().pipeline.stats().documents == 5
    assert sorted(_report(at)) == sorted(p.name for p in sample_files() if p.name != "walden-where-i-lived.txt")


def test_a_second_admin_is_told_to_wait_instead_of_blocking(app_env, monkeypatch, admin_hash):
    import threading

    from indexer import ProgressEvent

    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = sign_in(open_page(INGEST))
    service = get_service()
    hold = threading.Event()

    def other_ingest(notify):  # another session's ingest, stuck at 40 %
        notify(ProgressEvent("embed", 0, 1, "big.pdf", 40, 100))
        assert hold.wait(60)

    other = service.start("ingest", "12 uploaded files", other_ingest)
    try:
        at.run()
        assert "Running now: ingest of 12 uploaded files" in plain(at.get("progress")[0].text)
        at.file_uploader[0].set_value([GOOD]).run()
        at.button(key="ingest-uploads").click().run()
        assert "Another job is running; wait for the running ingest of 12 uploaded files" in texts(at.warning)
        assert "40%: big.pdf: embedded 40/100 chunks" in texts(at.warning)
        assert not at.exception and at.file_uploader[0].value  # the batch is kept for a retry
    finally:
        hold.set()
    assert other.wait(60) and other.error is None
    finish_job(at.button(key="ingest-uploads").click().run())
    assert _report(at)["kestrel-notes.txt"] == ("ok", "")


def test_the_documents_table_is_paged(app_env, monkeypatch, admin_hash):
    from indexer import Source

    monkeypatch.setenv(ENV_VAR, admin_hash)
    notes = [Source.upload(f"note-{i:02d}.txt", f"Field note {i} about the marsh wren.".encode()) for i in range(52)]
    assert get_service().ingest(notes, "52 notes").ok == 52
    at = sign_in(open_page(INGEST))
    assert "Documents (52)" in texts(at.markdown)
    table = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert list(table["source"]) == [f"note-{i:02d}.txt" for i in range(50)]
    at.number_input(key="doc_page").set_value(2).run()
    table = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert list(table["source"]) == ["note-50.txt", "note-51.txt"] and not at.exception
    page_two = {d.doc_id: d.source for d in get_service().pipeline.documents(50, 50)}
    assert sorted(page_two.values()) == ["note-50.txt", "note-51.txt"]
    options = at.multiselect(key="delete_ids").options  # the delete list offers this page's documents
    assert len(options) == 2 and all(name in " ".join(options) for name in page_two.values())


def test_delete_asks_first_and_cancel_or_a_new_choice_deletes_nothing(app_env, monkeypatch, admin_hash):
    monkeypatch.setenv(ENV_VAR, admin_hash)
    service = get_service()
    service.ingest_sample()
    at = sign_in(open_page(INGEST))
    docs = {d.source: d.doc_id for d in service.pipeline.documents()}
    pick = [docs["gettysburg-address.txt"], docs["bill-of-rights.pdf"]]
    at.multiselect(key="delete_ids").set_value(pick).run()
    at.button(key="delete").click().run()
    assert "Delete 2 documents: gettysburg-address.txt, bill-of-rights.pdf?" in texts(at.warning)
    assert at.button(key="delete").disabled and at.button(key="delete-confirm").label == "Yes, delete 2 documents"
    at.button(key="delete-cancel").click().run()  # cancelled: nothing deleted, the choice stays for another try
    assert not at.warning and at.multiselect(key="delete_ids").value == pick
    assert service.pipeline.stats().documents == len(sample_files())

    at.button(key="delete").click().run()
    at.multiselect(key="delete_ids").set_value(pick[:1]).run()  # a new choice withdraws the question
    assert not at.warning and not [b for b in at.button if b.key == "delete-confirm"]
    assert service.pipeline.stats().documents == len(sample_files())

    at.button(key="delete").click().run()
    at.button(key="delete-confirm").click().run()
    assert "Deleted 1 document: gettysburg-address.txt" in texts(at.success)
    assert sorted(d.source for d in service.pipeline.documents()) == sorted(
        p.name for p in sample_files() if p.name != "gettysburg-address.txt")


def test_the_reindex_job_panel_refreshes_itself_and_can_be_cancelled(app_env, monkeypatch, admin_hash):
    from app.jobpanel import PANEL_EVERY_S, refresh_every

    monkeypatch.setenv(ENV_VAR, admin_hash)
    service = get_service()
    service.ingest_sample()
    at = sign_in(open_page(INGEST))
    assert refresh_every(None, service) is None  # nothing runs: the panel is drawn with the page only
    with service.pipeline._write:  # an ingest holds the write lock: the reindex waits at its start
        at.button(key="reindex").click().run()
        job = at.session_state["job"]
        assert job.kind == "reindex" and not job.finished and service.busy is None  # the re-index lane
        assert refresh_every(job, service) == PANEL_EVERY_S  # live like an ingest's panel
        assert "Reindex of all documents: starting" in plain(at.get("progress")[0].text)
        at.button(key="cancel-job").click().run()
        assert job.cancel.is_set() and at.button(key="cancel-job").disabled
    assert job.wait(60)
    at.run()
    assert not at.exception and "The reindex was cancelled" in texts(at.info)
    assert "The index in service is unchanged." in texts(at.info) and refresh_every(job, service) is None
    assert service.pipeline.stats().documents == len(sample_files())
