"""Ingest over the API: the job's report is the structure `python -m indexer ingest --json` prints, one bad file
fails alone, the caps answer 413, server paths stay within MOESEARCH_INGEST_ROOTS, searches group by document."""

from __future__ import annotations

from api import ApiSettings
from indexer import IngestReport


def test_the_job_report_is_the_cli_report(client, auth, pipeline):
    files = [("files", ("cells.txt", b"Ribosomes translate messenger RNA into proteins. " * 20)),
             ("files", ("empty.txt", b""))]
    response = client.post("/ingest", files=files, params={"wait": "true"}, headers=auth)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["state"] == "done" and job["progress"]["stage"] == "done"
    report = job["report"]
    assert set(report) == set(IngestReport(()).to_dict())  # the keys `ingest --json` prints
    statuses = {f["name"]: (f["status"], f["reason"]) for f in report["files"]}
    assert statuses["cells.txt"][0] == "ok" and statuses["empty.txt"] == ("failed", "empty file (0 bytes)")
    assert client.get(f"/jobs/{job['id']}", headers=auth).json()["report"] == report
    found = client.get("/search", params={"q": "ribosomes proteins", "group": "true", "passages": 1}).json()
    assert found["documents"][0]["source"] == "cells.txt" and len(found["documents"][0]["hits"]) == 1
    assert found["hits"][0]["file_url"].endswith(f"/documents/{found['hits'][0]['doc_id']}/file")
    original = client.get(found["hits"][0]["file_url"])
    assert original.content.startswith(b"Ribosomes") and "cells.txt" in original.headers["content-disposition"]


def test_caps_and_roots_are_errors_that_name_the_cause(pipeline, settings, make_client, auth, roots, tmp_path):
    runtime, client = make_client(pipeline, settings, ApiSettings(max_upload_files=1))
    try:
        two = [("files", ("a.txt", b"alpha words")), ("files", ("b.txt", b"beta words"))]
        refused = client.post("/ingest", files=two, headers=auth)
        assert refused.status_code == 413 and "MOESEARCH_API_MAX_UPLOAD_FILES" in refused.json()["error"]["message"]
        empty = client.post("/ingest", files=two[:1], data={"replace": ""}, headers=auth)
        assert empty.status_code == 422 and "replace" in empty.json()["error"]["message"]
        outside = client.post("/ingest/paths", json={"paths": [str(tmp_path)]}, headers=auth)
        assert outside.status_code == 400 and "MOESEARCH_INGEST_ROOTS" in outside.json()["error"]["message"]
        (roots / "inside.txt").write_text("Glaciers carve valleys over thousands of years. " * 10)
        inside = client.post("/ingest/paths", json={"paths": [str(roots)]}, params={"wait": "true"}, headers=auth)
        assert inside.status_code == 200 and inside.json()["report"]["ok"] == 1
    finally:
        runtime.close()
