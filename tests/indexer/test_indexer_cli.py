from __future__ import annotations

import io
import json

import pytest
from indexer_testfiles import make_pdf, sentences
from PIL import Image

from indexer.cli import run
from indexer.pipeline import Pipeline


@pytest.fixture
def env(monkeypatch, data_dir, tiny_model_dir):
    values = {"MOESEARCH_DATA_DIR": str(data_dir), "MOESEARCH_MODEL": str(tiny_model_dir), "MOESEARCH_DEVICE": "cpu",
              "MOESEARCH_CHUNK_TOKENS": "48", "MOESEARCH_CHUNK_OVERLAP": "8"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    return data_dir


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(sentences(20, 1, "pangolin"))
    (docs / "b.pdf").write_bytes(make_pdf([sentences(10, 2, "axolotl"), sentences(10, 3, "quokka")]))
    return docs


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_ingest_search_stats_documents_delete(env, folder, capsys, monkeypatch):
    assert run(["ingest", str(folder), "--json"]) == 0
    report = _json(capsys)
    assert report["ok"] == 2 and report["failed"] == 0 and report["pages"] == 3
    assert run(["ingest", str(folder)]) == 0
    assert "0 ok, 2 unchanged/duplicate" in capsys.readouterr().out

    assert run(["search", "quokka", "--k", "3", "--json", "--mode", "keyword"]) == 0
    hits = _json(capsys)
    assert hits[0]["source"] == "b.pdf" and hits[0]["page"] == 2 and "quokka" in hits[0]["matched_terms"]
    assert run(["search", "pangolin", "--type", "pdf", "--json"]) == 0
    assert all(h["doc_type"] == "pdf" for h in _json(capsys))
    assert run(["search", "pangolin", "--source", "a.txt"]) == 0
    out = capsys.readouterr().out
    assert " 1. similarity 0." in out and "a.txt p.1" in out  # the tiny model has no calibration: the cosine
    assert "no good match" not in out
    monkeypatch.setenv("MOESEARCH_MIN_SIMILARITY", "0.9999")  # nothing reaches it
    assert run(["search", "pangolin", "--source", "a.txt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no good match: ") and " 1. weak match " in out and "a.txt p.1" in out
    assert run(["search", "pangolin", "--mode", "keyword"]) == 0
    assert " 1. keyword match " in capsys.readouterr().out
    monkeypatch.delenv("MOESEARCH_MIN_SIMILARITY")

    assert run(["stats", "--json"]) == 0
    stats = _json(capsys)
    assert stats["documents"] == 2 and stats["backend"] == "edge" and stats["chunks"] > 2
    assert run(["documents", "--json"]) == 0
    assert sorted(d["source"] for d in _json(capsys)) == ["a.txt", "b.pdf"]
    assert run(["delete", "a.txt", "--json"]) == 0
    assert len(_json(capsys)["deleted"]) == 1
    assert run(["delete", "a.txt"]) == 1
    assert "no document matches" in capsys.readouterr().out
    assert run(["reindex"]) == 0
    assert "already matches" in capsys.readouterr().out


def test_delete_refuses_a_name_several_documents_share(env, tmp_path, capsys):
    """Two files named a.txt in two folders: ``delete a.txt`` deletes nothing and lists both (doc_id and path);
    the full path or the doc_id picks one."""
    paths = []
    for i, sub in enumerate(("one", "two")):
        (tmp_path / sub).mkdir()
        paths.append(tmp_path / sub / "a.txt")
        paths[-1].write_text(sentences(12, 10 + i, f"topic{sub}"))
    assert run(["ingest", *map(str, paths), "--json"]) == 0
    ids = {f["path"]: f["doc_id"] for f in _json(capsys)["files"]}
    assert len(set(ids.values())) == 2

    assert run(["delete", "a.txt"]) == 2
    err = capsys.readouterr().err
    assert "2 documents match 'a.txt'" in err and all(p in err and d in err for p, d in ids.items())
    assert run(["delete", "a.txt", "--json"]) == 2
    listed = _json(capsys)
    assert listed["deleted"] == [] and sorted(d["doc_id"] for d in listed["ambiguous"]) == sorted(ids.values())
    assert run(["documents", "--json"]) == 0 and len(_json(capsys)) == 2  # nothing was deleted

    assert run(["delete", str(paths[0]), "--json"]) == 0
    assert _json(capsys)["deleted"] == [ids[str(paths[0])]]
    assert run(["delete", ids[str(paths[1])], "--json"]) == 0
    assert _json(capsys)["deleted"] == [ids[str(paths[1])]]
    assert run(["documents", "--json"]) == 0 and _json(capsys) == []


def test_failed_files_give_exit_code_1_with_reasons(env, folder, capsys):
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    (folder / "fake.pdf").write_bytes(gif.getvalue())
    assert run(["ingest", str(folder), str(folder / "missing.txt"), "--json"]) == 1
    report = _json(capsys)
    failed = {f["name"]: f["reason"] for f in report["files"] if f["status"] == "failed"}
    assert set(failed) == {"fake.pdf", "missing.txt"} and "GIF image" in failed["fake.pdf"]
    assert report["ok"] == 2


def test_usage_and_store_errors_give_exit_code_2(env, folder, capsys, make_settings, tiny_embedder):
    with pytest.raises(SystemExit) as exc:
        run(["frobnicate"])
    assert exc.value.code == 2
    assert run(["search", "x", "--k", "0"]) == 2
    assert "k must be" in capsys.readouterr().err
    assert run(["search", "x", "--from", "yesterday"]) == 2
    assert "not an ISO date" in capsys.readouterr().err
    with Pipeline(make_settings(), embedder=tiny_embedder):  # e.g. the app holds the embedded store
        assert run(["stats"]) == 2
        err = capsys.readouterr().err
        assert "already open in another process" in err and "QDRANT_URL" in err and "Traceback" not in err


def test_bad_settings_are_a_usage_error(env, monkeypatch, capsys):
    monkeypatch.setenv("MOESEARCH_CHUNK_OVERLAP", "lots")
    assert run(["stats"]) == 2
    assert "MOESEARCH_CHUNK_OVERLAP must be an integer" in capsys.readouterr().err
