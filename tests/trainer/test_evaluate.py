"""Evaluation: exact search vs a naive loop, measures vs hand computation, per-query scores and intervals, the
ONNX (int8, what the app serves) and torch backends on one tiny BEIR folder, the eval and compare CLIs."""

import json
import math

import ir_measures
import numpy as np
import pytest
import torch
from trainer_helpers import synthetic_pairs, write_beir

from trainer.__main__ import main
from trainer.compare import compare, load_evals
from trainer.evaluate import OnnxBackend, TorchBackend, evaluate, evaluate_many, search
from trainer.measures import MEASURES, measure_run, run_measures


def test_search_matches_naive_topk():
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(5, 8, generator=g), torch.randn(40, 8, generator=g)
    scores, idx = search(q, d, 7, chunk=2)
    for i in range(5):
        naive = sorted(range(40), key=lambda j: -float(q[i] @ d[j]))[:7]
        assert idx[i].tolist() == naive
        assert scores[i, 0].item() == pytest.approx(float(q[i] @ d[naive[0]]), rel=1e-6)


def test_measures_match_hand_computation():
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    run = {"q1": {"x": 3.0, "b": 2.0, "a": 1.0}, "q2": {"y": 2.0, "z": 1.0}}
    # trec_eval (and so BEIR/MTEB) use linear gains: gain = relevance grade
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    got = run_measures(qrels, run)
    assert got["nDCG@10"] == pytest.approx((dcg / idcg + 0.0) / 2, rel=1e-6)
    assert got["R@100"] == pytest.approx((1.0 + 0.0) / 2)


def test_per_query_scores_average_to_ir_measures_aggregate_and_ci_holds_the_mean():
    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(50)]
    qrels = {f"q{i}": {docs[j]: int(rng.integers(1, 3)) for j in rng.choice(50, 3, replace=False)} for i in range(40)}
    qrels["q_none"] = {"d1": 1}  # a judged query the run has no result for scores 0
    run = {f"q{i}": {d: float(rng.random()) for d in docs} for i in range(40)}
    agg = ir_measures.calc_aggregate(list(MEASURES), qrels, run)
    res = measure_run(qrels, run, resamples=200, seed=1)
    for m in MEASURES:
        pq = res["per_query"][str(m)]
        assert len(pq) == 41 and pq["q_none"] == 0.0
        assert res[str(m)] == pytest.approx(sum(pq.values()) / 41)
        assert res[str(m)] == pytest.approx(float(agg[m]))  # ir_measures also counts the missing query as 0
        lo, hi = res["ci95"][str(m)]
        assert lo <= res[str(m)] <= hi and hi - lo > 0
    assert measure_run(qrels, run, resamples=200, seed=1) == res  # deterministic with a seed


@pytest.fixture
def beir(tmp_path):
    return write_beir(tmp_path / "tb", synthetic_pairs(30, seed=2))


def test_onnx_int8_and_torch_agree_on_the_tiny_model(tmp_path, tiny_model_dir, beir):
    torch_row = evaluate(TorchBackend(tiny_model_dir), beir, "test", max_length=32, progress=False, resamples=100)
    onnx_row = evaluate(OnnxBackend(tiny_model_dir, tmp_path / "w", 32), beir, "test", max_length=32,
                        progress=False, resamples=100)
    for row in (torch_row, onnx_row):
        assert row["queries"] == 30 and row["docs"] == 30 and 0 < row["nDCG@10"] <= 1
        assert row["ci95"]["nDCG@10"][0] <= row["nDCG@10"] <= row["ci95"]["nDCG@10"][1]
    assert torch_row["backend"] == "torch-fp32" and onnx_row["backend"] == "onnx-int8-cpu"
    assert onnx_row["query_prefix"] == torch_row["query_prefix"] == "search_query: "
    assert abs(onnx_row["nDCG@10"] - torch_row["nDCG@10"]) < 0.1  # int8 quantisation moves a few ranks at most


def test_evaluate_many_both_reports_agreement_and_base_runs_through_onnx(tmp_path, tiny_model_dir,
                                                                          tiny_dense_dir, beir):
    (row,) = evaluate_many(tiny_model_dir, [str(beir)], backend="both", max_length=32, progress=False,
                           resamples=50)
    assert row["backend"] == "onnx-int8-cpu" and row["torch-fp32"]["backend"] == "torch-fp32"
    ag = row["agreement"]
    assert ag["nDCG@10"]["diff"] == pytest.approx(row["torch-fp32"]["nDCG@10"] - row["nDCG@10"])
    assert 0.5 <= ag["top10_overlap"] <= 1.0 and "top10" not in row
    # a plain dense BERT folder is evaluated through ONNX as a dense moesearch folder, equal to its torch run
    (dense_onnx,) = evaluate_many(tiny_dense_dir, [str(beir)], backend="onnx", max_length=32, progress=False,
                                  resamples=50)
    (dense_torch,) = evaluate_many(tiny_dense_dir, [str(beir)], backend="torch", max_length=32, progress=False,
                                   resamples=50)
    assert dense_onnx["query_prefix"] == "" and dense_onnx["model"] == str(tiny_dense_dir)
    assert abs(dense_onnx["nDCG@10"] - dense_torch["nDCG@10"]) < 0.1
    with pytest.raises(ValueError, match="backend must be one of"):
        evaluate_many(tiny_model_dir, [str(beir)], backend="gpu")


def test_eval_and_compare_cli(tmp_path, tiny_model_dir, tiny_dense_dir, beir, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["eval", "--model", str(tiny_model_dir), "--beir", str(beir), "--max-length", "32", "--quiet",
                 "--backend", "torch", "--resamples", "100", "--json", str(a)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(a.read_text())
    assert f'"nDCG@10": {rows[0]["nDCG@10"]}' in out and "per_query" not in out
    assert len(rows[0]["per_query"]["nDCG@10"]) == 30
    assert main(["compare", str(a), str(a), "--resamples", "200", "--json", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["nDCG@10"]["tb:test"]["p"] == 1.0 and same["nDCG@10"]["average"]["diff"] == 0.0
    assert main(["eval", "--model", str(tiny_dense_dir), "--beir", str(beir), "--max-length", "32", "--quiet",
                 "--backend", "torch", "--resamples", "100", "--json", str(b)]) == 0
    res = compare(load_evals(a), load_evals(b), resamples=200)
    r = res["nDCG@10"]["tb:test"]
    assert r["diff"] == pytest.approx(r["b"] - r["a"]) and 0 < r["p"] <= 1 and r["ci95"][0] <= r["diff"] <= r["ci95"][1]
    assert res["nDCG@10"]["average"]["diff"] == pytest.approx(r["diff"])  # one set: the average is that set
    assert main(["eval", "--model", str(tiny_model_dir), "--beir", str(tmp_path / "none"), "--quiet"]) == 2
    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 2


def test_load_evals_joins_files_with_plus(tmp_path):
    row = {"split": "test", "nDCG@10": 0.5, "per_query": {"nDCG@10": {"q1": 0.5}}}
    (tmp_path / "a.json").write_text(json.dumps([{**row, "dataset": "one"}]))
    (tmp_path / "b.json").write_text(json.dumps([{**row, "dataset": "two"}]))
    both = load_evals(f"{tmp_path / 'a.json'}+{tmp_path / 'b.json'}")
    assert sorted(both) == ["one:test", "two:test"]
    with pytest.raises(ValueError, match="already given"):
        load_evals(f"{tmp_path / 'a.json'}+{tmp_path / 'a.json'}")
