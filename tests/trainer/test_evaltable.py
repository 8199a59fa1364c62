"""The README / model-card table of eval files, and cross-lingual QUERIES@CORPUS sets of `trainer eval`."""

import json

import pytest

from trainer.evaltable import columns, english_gap, table
from trainer.evaluate import load_sets


def row(dataset, model, backend, value):
    return {"dataset": dataset, "split": "test", "model_id": model, "backend": backend, "nDCG@10": value,
            "ci95": {"nDCG@10": [value - 0.01, value + 0.01]}, "per_query": {"nDCG@10": {"q1": value}}}


def test_table_columns_rows_and_means(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps([row("scifact", "m", "onnx-int8-cpu", 0.6), row("cranfield", "m", "onnx-int8-cpu", 0.4),
                             row("xquad-zh@xquad-en", "m", "onnx-int8-cpu", 0.8)]))
    b = tmp_path / "b.json"
    b.write_text(json.dumps([row("scifact", "e", "onnx-gather-fp32-cpu", 0.7),
                             row("xquad-en", "e", "onnx-gather-fp32-cpu", 0.9)]))
    cols = columns([a, b])
    assert list(cols) == [("m", "int8"), ("e", "fp32")]
    text = table(cols)
    lines = text.splitlines()
    assert lines[0] == "| set | m int8 | e fp32 |"
    assert [x.split("|")[1].strip() for x in lines[2:]] == [
        "scifact", "cranfield", "XQuAD en", "XQuAD zh → en", "**mean, English held-out**",
        "**mean, XQuAD (all rows above)**"]
    assert "0.600 [0.590, 0.610]" in lines[2] and lines[3].endswith("| – |")
    assert "**0.500**" in lines[-2] and "**0.700**" in lines[-2]
    gap = english_gap(cols, ("e", "fp32"), ("m", "int8"))
    assert gap["sets"] == ["scifact"] and gap["gap"] == pytest.approx(0.1)


def beir(folder, queries, docs, qrels):
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"{q}\t{d}\t1\n" for q, d in qrels.items()))
    return folder


def test_cross_lingual_set(tmp_path):
    en = beir(tmp_path / "xq-en", {"q1": "Where is Paris?"}, {"p1": "Paris is in France."}, {"q1": "p1"})
    de = beir(tmp_path / "xq-de", {"q1": "Wo liegt Paris?"}, {"p1": "Paris liegt in Frankreich."}, {"q1": "p1"})
    corpus, queries, qrels, name = load_sets(f"{de}@{en}", "test")
    assert name == "xq-de@xq-en" and queries == {"q1": "Wo liegt Paris?"}
    assert corpus["p1"]["text"] == "Paris is in France." and qrels == {"q1": {"p1": 1}}
    other = beir(tmp_path / "other", {"q9": "x"}, {"p9": "y"}, {"q9": "p9"})
    with pytest.raises(ValueError, match="not parallel"):
        load_sets(f"{other}@{en}", "test")
