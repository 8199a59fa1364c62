"""Evaluation: exact search vs a naive loop, measures vs hand computation, the BEIR path end to end."""

import math

import pytest
import torch
from trainer_helpers import synthetic_pairs, write_beir

from trainer.__main__ import main
from trainer.encode import TextEncoder
from trainer.evaluate import evaluate, run_measures, search


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


def test_evaluate_tiny_folder_and_cli(tmp_path, tiny_model_dir, capsys):
    beir = write_beir(tmp_path / "tb", synthetic_pairs(30, seed=2))
    res = evaluate(TextEncoder.load(tiny_model_dir), beir, "test", max_length=32, progress=False)
    assert res["queries"] == 30 and res["docs"] == 30 and 0 < res["nDCG@10"] <= 1 and 0 < res["R@100"] <= 1
    assert res["query_prefix"] == "search_query: "
    assert main(["eval", "--model", str(tiny_model_dir), "--beir", str(beir), "--max-length", "32", "--quiet",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert f'"nDCG@10": {res["nDCG@10"]}' in out and (tmp_path / "r.json").is_file()
    assert main(["eval", "--model", str(tiny_model_dir), "--beir", str(tmp_path / "none"), "--quiet"]) == 2
