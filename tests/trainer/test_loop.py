"""Training stage: exact resume, checkpoints are exportable model folders, telemetry files, batch sampling."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from trainer_helpers import synthetic_pairs

from embedder.settings import EmbeddingSettings
from trainer.batching import BatchSampler
from trainer.checkpoint import LATEST
from trainer.config import StageConfig
from trainer.loop import train_stage


def stage(train_file, **kw):
    base = dict(train=(str(train_file),), steps=4, batch_size=16, chunk_size=8, lr=2e-3, warmup_steps=1,
                temperature=0.05, max_query_length=16, max_doc_length=24, dropout=0.1, num_negs=1, name="finetune")
    return StageConfig(**{**base, **kw})


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_continues_exactly(tmp_path, moe_dir, train_file):
    full = tmp_path / "full"
    train_stage(stage(train_file, save_every=2), moe_dir, full, progress=False)
    ckpts = sorted(p.name for p in (full / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert ckpts == ["step-000002", "step-000004"]
    # a run that stopped after step 2: only its first checkpoint exists
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-000002", part / "checkpoints" / "step-000002")
    (part / "checkpoints" / LATEST).write_text("step-000002\n")
    (part / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(full)[:2]))
    train_stage(stage(train_file, save_every=2), moe_dir, part, resume=True, progress=False)
    a = load_file(str(full / "model" / "model.safetensors"))
    b = load_file(str(part / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in rows(part)] == [r["loss"] for r in rows(full)]
    assert [r["step"] for r in rows(part)] == [0, 1, 2, 3]


def test_resume_refuses_a_different_config(tmp_path, moe_dir, train_file):
    run = tmp_path / "run"
    train_stage(stage(train_file, steps=2), moe_dir, run, progress=False)
    with pytest.raises(ValueError, match="different stage config"):
        train_stage(stage(train_file, steps=2, lr=1e-4), moe_dir, run, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_stage(stage(train_file, steps=2), moe_dir, tmp_path / "empty", resume=True, progress=False)


def test_prefixes_must_match_the_model_folder(tmp_path, moe_dir, train_file):
    with pytest.raises(ValueError, match="prefixes"):
        train_stage(stage(train_file, prefixes=False), moe_dir, tmp_path / "run", progress=False)


def test_run_folder_has_model_metrics_and_plots(tmp_path, moe_dir, train_file):
    run = tmp_path / "run"
    final = train_stage(stage(train_file, steps=2, num_negs=0, name="pretrain"), moe_dir, run, progress=False)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "moesearch.json", "README.md"):
        assert (final / name).is_file(), name
    assert not (final / "trainer_state.pt").exists()
    assert EmbeddingSettings.load(final).extra["step"] == 2
    assert (run / "loss.png").stat().st_size > 1000 and (run / "expert_load.png").stat().st_size > 1000
    r = rows(run)[0]
    assert set(r["load"]) == {"1"} and len(r["load"]["1"]) == 4
    assert sum(r["load"]["1"]) == pytest.approx(1.0, abs=1e-3)
    assert r["balancing"] >= 1.0 - 1e-6


def test_sampler_is_deterministic_distinct_and_per_source():
    pairs = synthetic_pairs(300, sources=("a", "b", "c"))
    settings = EmbeddingSettings(model_id="t")
    s = BatchSampler(pairs, 32, seed=1, num_negs=0, source_batches=True, settings=settings)
    b1, b2 = s.batch(5), s.batch(5)
    assert b1 == b2 and b1 != s.batch(6)
    assert len(set(b1.docs)) == len(b1.docs) == 32 and len(set(b1.queries)) == 32
    assert len(set(b1.sources)) == 1
    assert all(q.startswith("search_query: ") for q in b1.queries)
    assert all(d.startswith("search_document: ") for d in b1.docs)
    halves = [b1.slice(r, 2, 0) for r in range(2)]
    assert halves[0].queries + halves[1].queries == b1.queries


@pytest.mark.parametrize("source_batches", [True, False])
def test_source_weights(source_batches):
    pairs = synthetic_pairs(300, sources=("a", "b", "c"))
    settings = EmbeddingSettings(model_id="t")
    s = BatchSampler(pairs, 64, seed=0, num_negs=0, source_batches=source_batches, settings=settings,
                     source_weights=("b=0", "c=3"))
    seen = [src for step in range(30) for src in s.batch(step).sources]
    assert "b" not in seen and seen.count("c") > seen.count("a")
    with pytest.raises(ValueError, match="not in the training data"):
        BatchSampler(pairs, 16, seed=0, num_negs=0, source_batches=True, settings=settings, source_weights=("z=1",))


def test_sampler_needs_negatives_in_stage_two():
    settings = EmbeddingSettings(model_id="t")
    with pytest.raises(ValueError, match="without negatives"):
        BatchSampler(synthetic_pairs(40), 16, seed=0, num_negs=2, source_batches=False, settings=settings)
    s = BatchSampler(synthetic_pairs(40, negs=1), 16, seed=0, num_negs=3, source_batches=False, settings=settings)
    assert len(s.batch(0).negs) == 48  # one negative each, cycled to 3


@pytest.mark.parametrize("chunk", [4, 64])
def test_one_step_old_and_new_paths_agree(tmp_path, moe_dir, train_file, chunk):
    """The speedups (length-sorted chunks, no GradCache pass when a batch fits a chunk) leave the fp32 step
    as it was: same loss, same weights after the update, within fp tolerance."""
    out = {}
    for name, kw in (("old", dict(packing="sequential", gradcache="always")), ("new", {})):
        run = tmp_path / name
        final = train_stage(stage(train_file, steps=1, batch_size=8, chunk_size=chunk, dropout=0.0, **kw),
                            moe_dir, run, progress=False)
        out[name] = rows(run)[0], load_file(str(final / "model.safetensors"))
    (old, w_old), (new, w_new) = out["old"], out["new"]
    assert new["loss"] == pytest.approx(old["loss"], rel=1e-5)
    assert new["chunks"] <= old["chunks"] and (new["chunks"] == 1) == (chunk == 64)
    for k in w_old:
        torch.testing.assert_close(w_new[k], w_old[k], rtol=0, atol=1e-4, msg=k)  # lr 2e-3: Adam steps agree
