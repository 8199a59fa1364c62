"""The model card is written by code from a run folder: licences, data counts, recipe, timings, MFU when present,
evaluation with intervals and paired tests, the A/B table over several runs, per-expert load."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from trainer.__main__ import main
from trainer.card import GENERATED, render_card, write_card
from trainer.config import RecipeConfig, to_dict
from trainer.licences import LICENCES
from trainer.measures import measure_run
from trainer.recipe import write_licences


def eval_row(dataset: str, quality: float, seed: int, model_id: str) -> dict:
    """A row as `trainer.evaluate.evaluate` writes it: the positive doc lands at rank 0 with prob ``quality``."""
    rng = np.random.default_rng(seed)
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(60)}
    run = {}
    for i in range(60):
        others = {f"d{j}": float(rng.random()) for j in range(60) if j != i}
        run[f"q{i}"] = {**others, f"d{i}": 2.0 if rng.random() < quality else -1.0}
    return {"dataset": dataset, "split": "test", "model_id": model_id, "backend": "onnx-int8-cpu", "queries": 60,
            "docs": 60, "max_length": 512, **measure_run(qrels, run, resamples=200)}


def make_run(root: Path, name: str, quality: float, *, base: bool = True, mfu: float | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    cfg = RecipeConfig(model_id=name, num_experts=4, top_k=2)
    (run / "recipe_config.json").write_text(json.dumps(to_dict(cfg)))
    data = root / "data"
    manifest = {"sources": {"wordnet": {"source": "wordnet", "licence": LICENCES["wordnet"].licence,
                                        "commercial": True, "origin": "Debian package wordnet-base",
                                        "file": "pairs/wordnet.jsonl", "parsed": 900, "written": 800}},
                "held_out": {"decontamination_texts": 1234}}
    write_licences(cfg, manifest, [str(data / "pairs/wordnet.jsonl")], data, run)
    (run / "filtered").mkdir()
    (run / "filtered" / "filter_report.json").write_text(json.dumps({"wordnet": {"pairs": 800, "kept": 640}}))
    evals = {}
    for k, ds in enumerate(("setA", "setB")):
        evals[f"{ds}:test"] = {"model": eval_row(ds, quality, 10 + k, name)}
        if base:
            evals[f"{ds}:test"]["base"] = eval_row(ds, 0.5, 20 + k, "base")
    (run / "eval.json").write_text(json.dumps(evals))
    for st, steps in (("pretrain", 3), ("finetune", 2)):
        (run / st).mkdir()
        rows = [{"step": s, "contrastive": 1.0 / (s + 1), "load": {"1": [0.4, 0.2, 0.2, 0.2], "3": [0.25] * 4}}
                for s in range(steps)]
        (run / st / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = {"model": str(run / "model"), "timings_s": {"data": 1.0, "pretrain": 10.0, "finetune": 5.5},
              "first_contrastive": {"pretrain": 1.0}, "last_contrastive": {"pretrain": 0.33},
              "command": "python -m trainer recipe"}
    if mfu is not None:
        result["mfu"] = mfu
    (run / "result.json").write_text(json.dumps(result))
    return run


def test_card_from_a_run_folder(tmp_path):
    run = make_run(tmp_path, "moe", 0.9)
    card = render_card(run)
    assert card.startswith(GENERATED)
    assert "## Licence" in card and "Apache-2.0" in card
    assert re.search(r"\| wordnet \| wordnet \| WordNet 3\.0 .*\| yes \| 900 \| 800 \| 640 \|", card)
    assert "1234 held-out texts" in card and "scifact" in card and "techfaq" in card
    assert "- steps run: 3 + 2" in card and "total 16.5" in card
    assert "MFU: not measured" in card
    model = json.loads((run / "eval.json").read_text())["setA:test"]["model"]
    lo, hi = model["ci95"]["nDCG@10"]
    assert f"{model['nDCG@10']:.4f} ({lo:.4f}-{hi:.4f})" in card
    paired = re.search(r"\| average \| ([+-]\d\.\d+) \(([+-]\d\.\d+), ([+-]\d\.\d+)\) \| (\d\.\d+) \|", card)
    diff, lo, hi, p = map(float, paired.groups())
    assert lo <= diff <= hi and diff > 0.2 and p < 0.01  # 0.9 vs 0.5 at rank 1 over 120 queries
    assert "| 1 | 0.400 | 0.200 | 0.200 | 0.200 |" in card and "| 3 | 0.250 |" in card


def test_card_says_the_precision_each_stage_ran_in(tmp_path):
    run = make_run(tmp_path, "moe", 0.9)
    asked = to_dict(RecipeConfig(model_id="moe", num_experts=4, top_k=2))["pretrain"]["bf16"]
    assert f"bf16 {asked}" in render_card(run)  # no stage_config.json: what the recipe asked for
    (run / "pretrain" / "stage_config.json").write_text(json.dumps({"bf16_used": not asked}))
    (run / "finetune" / "stage_config.json").write_text(json.dumps({"bf16_used": asked}))
    card = render_card(run).splitlines()
    lines = {ln.split(":")[0]: ln for ln in card if ln.startswith(("- pretrain", "- finetune"))}
    assert f"bf16 {not asked} (asked: {asked})" in lines["- pretrain"]
    assert lines["- finetune"].endswith(f"bf16 {asked}")


def test_card_ab_table_and_mfu(tmp_path):
    shipped = make_run(tmp_path, "moe", 0.9, mfu=0.12)
    dense = make_run(tmp_path, "dense", 0.6, base=False)
    same = make_run(tmp_path, "same", 0.9, base=False)
    card = render_card(shipped, [dense, same])
    assert "MFU: 0.12 (result.json)" in card
    assert "## A/B" in card and "| dense | dense |" in card and "| moe | moe |" in card
    vs_dense = next(line for line in card.splitlines() if line.startswith("| dense | +"))
    ps = [float(x) for x in re.findall(r"p=(\d\.\d+)", vs_dense)]
    assert len(ps) == 3 and ps[-1] < 0.01  # setA, setB, average
    vs_same = next(line for line in card.splitlines() if line.startswith("| same | ") and "p=" in line)
    assert vs_same.count("p=1.000") == 3  # identical per-query scores (same seeds): no difference at all


def test_card_cli_and_missing_run(tmp_path, capsys):
    run = make_run(tmp_path, "moe", 0.8)
    other = make_run(tmp_path, "dense", 0.7)
    out = tmp_path / "models" / "x" / "README.md"
    assert main(["card", str(run), "--ab", str(other), "--out", str(out)]) == 0
    assert out.read_text() == render_card(run, [other]) and str(out) in capsys.readouterr().out
    assert write_card(run) == run / "model" / "README.md"
    with pytest.raises(FileNotFoundError, match="not a recipe run folder"):
        render_card(tmp_path / "nothing")
