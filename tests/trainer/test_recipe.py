"""The whole recipe on the tiny model: 10 + 10 steps end to end, loss falls, the model exports and evaluates."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from trainer_helpers import synthetic_pairs, write_beir

from embedder.export import is_current
from embedder.settings import EmbeddingSettings
from trainer.config import load_config
from trainer.data import write_jsonl
from trainer.recipe import run_recipe

TINY = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "tiny.toml"


def mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.slow  # every recipe stage, export and eval: about 30 s here
def test_tiny_recipe_end_to_end(tmp_path, tiny_dense_dir):
    pairs = synthetic_pairs(260, seed=7, sources=("alpha", "beta"))
    write_jsonl(tmp_path / "mine.jsonl", pairs[:200])
    beir = write_beir(tmp_path / "tinybeir", pairs[200:])
    cfg = load_config(TINY, {"base": str(tiny_dense_dir), "out_dir": str(tmp_path / "run"),
                             "data_dir": str(tmp_path / "data"), "data.user": str(tmp_path / "mine.jsonl"),
                             "eval.beir": str(beir), "filter.teacher": str(tiny_dense_dir),
                             "eval.baseline": str(tiny_dense_dir)})
    result = run_recipe(cfg, progress=False)
    run = tmp_path / "run"
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["sources"]["user-mine"]["written"] == 200
    report = json.loads((run / "filtered" / "filter_report.json").read_text())
    assert sum(r["pairs"] for r in report.values()) == 200 and all(0 < r["kept"] <= r["pairs"]
                                                                   for r in report.values())
    mined = [json.loads(x) for f in (run / "mined").glob("*.jsonl") for x in f.read_text().splitlines()]
    assert mined and all(len(r["negs"]) <= 2 for r in mined) and sum(bool(r["negs"]) for r in mined) > 0.8 * len(mined)
    for stage in ("pretrain", "finetune"):
        rows = [json.loads(x) for x in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 10
        losses = [r["contrastive"] for r in rows]
        assert mean(losses[-3:]) < mean(losses[:3]), (stage, losses)
        assert (run / stage / "loss.png").is_file() and (run / stage / "expert_load.png").is_file()
    model = Path(result["model"])
    assert is_current(model)  # onnx/ exported from these very weights
    assert EmbeddingSettings.load(model).extra["step"] == 10
    ev = result["evals"]["tinybeir:test"]
    assert set(ev) == {"base", "model"}
    for who in ("base", "model"):
        assert 0.0 <= ev[who]["nDCG@10"] <= 1.0 and ev[who]["queries"] == 60
    card = (model / "README.md").read_text()
    assert "tinybeir:test" in card and "user-mine" in card and "nyt" in card
    # licences: every used source in the run folder and the card, with the resulting model licence
    lic = json.loads((run / "licences.json").read_text())
    assert set(lic["sources"]) == {"user-mine"} and "user-supplied data (user-mine)" in lic["model_licence"]
    assert "## Licence" in card and lic["model_licence"] in card and "Model vs base, paired" in card
    eval_rows = json.loads((run / "eval.json").read_text())["tinybeir:test"]
    assert len(eval_rows["model"]["per_query"]["nDCG@10"]) == 60 and eval_rows["model"]["backend"] == "onnx-int8-cpu"
    # --resume on a finished run: nothing is retrained, the same model comes out; with no baseline (the dense
    # A/B run) only the model is evaluated
    weights = (run / "finetune" / "model" / "model.safetensors").read_bytes()
    again = run_recipe(replace(cfg, eval=replace(cfg.eval, baseline="")), progress=False, resume=True)
    assert (run / "finetune" / "model" / "model.safetensors").read_bytes() == weights
    assert set(again["evals"]["tinybeir:test"]) == {"model"}
    assert again["evals"]["tinybeir:test"]["model"]["nDCG@10"] == ev["model"]["nDCG@10"]
    assert len((run / "pretrain" / "metrics.jsonl").read_text().splitlines()) == 10
