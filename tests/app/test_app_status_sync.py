"""The Status page's synced folders (indexer/sync.py): an admin adds a folder within MOESEARCH_INGEST_ROOTS, sees
its counts and failures, and stops it; a visitor sees the counts without the server paths."""

from __future__ import annotations

from app_helpers import open_page, sign_in, texts

from indexer import IndexerSettings, synced_folders


def test_an_admin_adds_and_stops_a_synced_folder_on_the_status_page(app_env, tmp_path, monkeypatch, admin_hash):
    from app.auth import ENV_VAR

    roots = tmp_path / "roots"
    (roots / "docs").mkdir(parents=True)
    (roots / "docs" / "empty.txt").write_bytes(b"")
    monkeypatch.setenv("MOESEARCH_INGEST_ROOTS", str(roots))
    monkeypatch.setenv(ENV_VAR, admin_hash)
    visitor = open_page("views/status.py")
    assert not visitor.exception and "No synced folders" in texts(visitor.caption)

    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/status.py").run()
    at.text_input(key="sync-path").set_value(str(tmp_path))
    at.button[[b.label for b in at.button].index("Sync folder")].click().run()
    assert "outside the folders allowed by MOESEARCH" in texts(at.error)

    at.text_input(key="sync-path").set_value(str(roots / "docs"))
    at.button[[b.label for b in at.button].index("Sync folder")].click().run()
    assert not at.exception and "Syncing" in texts(at.success)
    settings = IndexerSettings.from_env()
    assert [f.path for f in synced_folders(settings)] == [str(roots / "docs")]
    table = [d.value for d in at.dataframe if "folder" in d.value.columns][0]
    assert list(table["folder"]) == [str(roots / "docs")]

    stop = [b for b in at.button if b.label.startswith("Stop syncing")][0]
    stop.click().run()
    assert synced_folders(settings) == [] and "No synced folders" in texts(at.caption)
