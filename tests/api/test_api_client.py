"""The CLI's client: a service on loopback writes the data folder's endpoint file; ``remote_pipeline`` finds it and
serves the CLI's calls (ingest of local paths, search, similar, stats, delete) with the pipeline's value types;
a stale endpoint file (dead process) or a stopped service means "open the index yourself"."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from api import PREFIX, ApiSettings, create_app, runtime_for
from indexer import IngestReport, endpoint_file, remote_pipeline


@pytest.fixture
def service(pipeline, settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runtime = runtime_for(lambda: pipeline, settings, ApiSettings(), url=f"http://127.0.0.1:{port}{PREFIX}",
                          sync=False)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Mount(PREFIX, app=create_app(runtime))]),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    runtime.start(wait=True)
    end = time.monotonic() + 30
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)  # polling another thread's start-up flag
    assert server.started
    yield runtime
    runtime.close()
    server.should_exit = True
    thread.join()
    sock.close()


def test_the_cli_talks_to_the_running_service(service, settings, tmp_path):
    remote = remote_pipeline(settings)
    assert remote is not None and remote.url == service.url
    notes = tmp_path / "notes.txt"
    notes.write_text("Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. " * 10)
    with remote:
        report = remote.ingest([notes])
        assert isinstance(report, IngestReport) and report.ok == 1 and report.files[0].path == str(notes)
        hits = remote.search("photosynthesis sugar", k=3)
        assert hits and hits[0].path == str(notes) and hits[0].source == "notes.txt"
        assert remote.stats().documents == 1
        assert remote.similar(str(notes)) == []  # the only document has no neighbours
        assert [d.source for d in remote.documents()] == ["notes.txt"]
        assert remote.delete("notes.txt") == [report.files[0].doc_id]
        assert remote.delete("notes.txt") == []
        with pytest.raises(ValueError, match="k"):
            remote.search("x", k=0)


def test_no_service_means_the_cli_opens_the_index_itself(service, settings):
    path = endpoint_file(settings.data_dir)
    found = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text(json.dumps({**found, "pid": 2**22 + 12345}))  # a process that does not exist
    assert remote_pipeline(settings) is None
    service.close()
    assert not path.exists() or remote_pipeline(settings) is None


def test_the_cli_command_goes_to_the_service_that_owns_the_folder(service, settings, monkeypatch, tmp_path, capsys):
    from indexer.cli import run

    for key, value in {"MOESEARCH_DATA_DIR": str(settings.data_dir), "MOESEARCH_MODEL": str(settings.model_dir),
                       "MOESEARCH_DEVICE": "cpu", "MOESEARCH_CHUNK_TOKENS": "48",
                       "MOESEARCH_CHUNK_OVERLAP": "8"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    notes = tmp_path / "tides.txt"
    notes.write_text("Tides are caused by the gravity of the moon and the sun pulling on the oceans. " * 8)
    # the service's pipeline holds the embedded store: opening it here would be refused, so these go over HTTP
    assert run(["ingest", str(notes), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 1
    assert run(["search", "moon gravity oceans", "--json"]) == 0
    assert "tides.txt" in capsys.readouterr().out
    assert run(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 1
