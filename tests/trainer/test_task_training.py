"""Task-aware training of task-expert (MoTE) models: one task a batch, the right expert per side, only the
batch's experts move, per-task temperature and weight, and GradCache, Matryoshka, resume and DDP as in the
learned mode."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trainer_helpers import synthetic_pairs

from embedder.settings import EmbeddingSettings
from trainer.batching import BatchSampler
from trainer.checkpoint import LATEST
from trainer.config import ByTask, StageConfig, TaskSpec
from trainer.data import write_jsonl
from trainer.distributed import Dist
from trainer.encode import TextEncoder
from trainer.gradcache import cached_step
from trainer.loop import make_loss, make_stepper, set_dropout, train_stage
from trainer.telemetry import task_expert_distances

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "trainer" / "configs" / "tiny.toml"


@pytest.fixture
def task_dir(tmp_path, tiny_task_model_dir) -> Path:
    """A private copy of the tiny task-expert folder (tasks search_query, search_document, symmetric; layer 1)."""
    dst = tmp_path / "task-init"
    shutil.copytree(tiny_task_model_dir, dst, ignore=shutil.ignore_patterns("onnx"))
    return dst


def mixed_pairs(n=96, negs=1):
    """Half retrieval, half symmetric pairs (the symmetric ones from their own sources)."""
    pairs = synthetic_pairs(n, negs=negs, sources=("alpha", "beta"))
    return [p if i % 2 else replace(p, task="symmetric", source="sym-" + p.source) for i, p in enumerate(pairs)]


@pytest.fixture
def mixed_file(tmp_path) -> Path:
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, mixed_pairs())
    return path


def stage(train_file, **kw):
    base = dict(train=(str(train_file),), steps=4, batch_size=16, chunk_size=8, lr=2e-3, warmup_steps=1,
                temperature=0.05, max_query_length=16, max_doc_length=24, dropout=0.1, num_negs=1, name="finetune",
                matryoshka_dims=(32, 16))
    return StageConfig(**{**base, **kw})


def expert_weights(state, layer=1):
    """{expert index: {name: tensor}} of the task layer in a state dict."""
    out = {}
    for k, v in state.items():
        if f"layer.{layer}.moe.experts." in k:
            e = int(k.split("moe.experts.")[1].split(".")[0])
            out.setdefault(e, {})[k] = v
    return out


def test_batches_hold_one_task_weighted_by_task():
    pairs = mixed_pairs(400, negs=0)
    settings = EmbeddingSettings(model_id="t")
    s = BatchSampler(pairs, 32, seed=0, num_negs=0, source_batches=True, settings=settings, use_prefixes=False,
                     task_weights={"retrieval": 1.0, "symmetric": 3.0})
    for step in range(20):
        b = s.batch(step)
        got = {r.task for r in pairs if r.query in set(b.queries)}
        assert got == {b.task} == {s.task(step)} and len(set(b.queries)) == 32
    share = sum(s.task(step) == "symmetric" for step in range(1000)) / 1000  # equal sizes, weights 1 : 3
    assert share == pytest.approx(0.75, abs=0.05)
    only = BatchSampler(pairs, 32, seed=0, num_negs=0, source_batches=False, settings=settings, use_prefixes=False,
                        task_weights={"retrieval": 1.0, "symmetric": 0.0})
    assert {only.batch(step).task for step in range(10)} == {"retrieval"}
    with pytest.raises(ValueError, match="fewer than batch_size"):
        BatchSampler(pairs[:40], 32, seed=0, num_negs=0, source_batches=True, settings=settings, use_prefixes=False,
                     task_weights={"retrieval": 1.0, "symmetric": 1.0})


def test_cached_step_runs_each_side_through_its_task_expert(task_dir):
    """GradCache + Matryoshka in task mode == the naive step with query ids on queries, document ids on docs."""
    enc = TextEncoder.load(task_dir)
    qid, did = enc.model.config.task_ids(["search_query", "search_document"])
    cfg = StageConfig(temperature=0.05, matryoshka_dims=(32, 16), batch_size=8)
    loss_fn = make_loss(cfg, (32, 16))
    pairs = synthetic_pairs(8, seed=3, negs=2)
    q, d, n = [p.query for p in pairs], [p.pos for p in pairs], [x for p in pairs for x in p.negs]
    results = []
    for mode in ("naive", "cached"):
        enc = TextEncoder.load(task_dir)
        set_dropout(enc.model, 0.0)
        enc.model.train()
        if mode == "naive":
            embs = []
            for texts, tid, max_len in ((q, qid, 16), (d, did, 24), (n, did, 24)):
                ids, mask = enc.tokenize(texts, max_len)
                embs.append(enc.forward(ids, mask, torch.full((len(texts),), tid))[0])
            loss, _ = loss_fn(*embs)
            loss.backward()
            loss = loss.item()
        else:
            res = cached_step(enc, q, d, n, loss_fn, max_query_length=16, max_doc_length=24, chunk_size=3,
                              aux_coef=0.01, top_k=1, tasks={"q": qid, "d": did, "n": did})
            assert res.cached and res.counts is None and res.balancing == 0.0
            loss = res.contrastive
        results.append((loss, {k: p.grad.clone() for k, p in enc.model.named_parameters() if p.grad is not None}))
    (l0, g0), (l1, g1) = results
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert g0.keys() == g1.keys()
    sym = enc.model.config.task_ids(["symmetric"])[0]
    assert not any(f"moe.experts.{sym}." in k for k in g0)  # no symmetric text: that expert gets no gradient
    assert any(f"moe.experts.{qid}." in k for k in g0) and any(f"moe.experts.{did}." in k for k in g0)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.parametrize("task,moved", [("symmetric", {"symmetric"}),
                                        ("retrieval", {"search_query", "search_document"})])
def test_training_moves_only_the_experts_of_the_batch_task(tmp_path, task_dir, mixed_file, task, moved):
    other = {"retrieval": "symmetric", "symmetric": "retrieval"}[task]
    by_task = replace(ByTask(), **{other: TaskSpec(weight=0.0)})
    run = tmp_path / "run"
    final = train_stage(stage(mixed_file, steps=3, by_task=by_task, weight_decay=0.1), task_dir, run, progress=False)
    before, after = load_file(str(task_dir / "model.safetensors")), load_file(str(final / "model.safetensors"))
    tasks = list(json.loads((task_dir / "config.json").read_text())["tasks"])
    eb, ea = expert_weights(before), expert_weights(after)
    for e, name in enumerate(tasks):
        same = all(torch.equal(eb[e][k], ea[e][k]) for k in eb[e])
        assert same == (name not in moved), (name, same)
    dense = [k for k in before if ".moe." not in k and "embeddings" not in k]
    assert any(not torch.equal(before[k], after[k]) for k in dense)  # shared layers train on every task
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows} == {task} and all(set(r["experts"]) == moved for r in rows)
    dist = json.loads((run / "expert_distance.json").read_text())
    assert set(dist["layers"]) == {"1"} and len(dist["layers"]["1"]) == 3


def test_idle_experts_get_no_optimizer_update_between_their_tasks_steps(task_dir, mixed_file):
    """AdamW momentum and weight decay do not move an expert on the steps of another task."""
    enc = TextEncoder.load(task_dir)
    enc.model.train()
    from trainer.data import read_training

    cfg = stage(mixed_file, weight_decay=0.1)
    stepper = make_stepper(cfg, enc, read_training(cfg.train), Dist())
    steps = {t: [s for s in range(40) if stepper.sampler.task(s) == t] for t in ("retrieval", "symmetric")}
    first = steps["retrieval"][0]
    later = [s for s in steps["symmetric"] if s > first][:2]
    assert later
    stepper.run(first)  # the query/document experts now carry AdamW momentum
    snap = {k: v.clone() for k, v in enc.model.state_dict().items()}
    for s in later:
        row, _ = stepper.run(s)
        assert row["task"] == "symmetric"
    now = enc.model.state_dict()
    qid, did, sid = enc.model.config.task_ids(["search_query", "search_document", "symmetric"])
    for k in snap:
        if ".moe.experts." in k:
            e = int(k.split("moe.experts.")[1].split(".")[0])
            assert torch.equal(snap[k], now[k]) == (e in (qid, did)), k


def test_per_task_temperature_applies_to_that_tasks_batches(task_dir, mixed_file):
    from trainer.data import read_training

    losses = {}
    for sym_t in (0.05, 0.2):
        enc = TextEncoder.load(task_dir)
        set_dropout(enc.model, 0.0)
        cfg = stage(mixed_file, dropout=0.0, by_task=ByTask(symmetric=TaskSpec(temperature=sym_t)))
        stepper = make_stepper(cfg, enc, read_training(cfg.train), Dist())
        by = {t: next(s for s in range(40) if stepper.sampler.task(s) == t) for t in ("retrieval", "symmetric")}
        losses[sym_t] = {t: stepper.run(s)[0]["contrastive"] for t, s in sorted(by.items())}
    assert losses[0.05]["retrieval"] == pytest.approx(losses[0.2]["retrieval"], rel=1e-6)
    assert abs(losses[0.05]["symmetric"] - losses[0.2]["symmetric"]) > 1e-3


def test_task_settings_are_validated(tmp_path, moe_dir, tiny_dense_dir, mixed_file):
    with pytest.raises(ValueError, match="task_batches=true"):  # a learned model mixes tasks unless told
        train_stage(stage(mixed_file, by_task=ByTask(symmetric=TaskSpec(weight=2.0))), moe_dir, tmp_path / "a",
                    progress=False)
    with pytest.raises(ValueError, match="must not all be zero"):
        ByTask(retrieval=TaskSpec(weight=0.0), symmetric=TaskSpec(weight=0.0))
    with pytest.raises(ValueError, match="weight must be >= 0"):
        TaskSpec(weight=-1.0)
    # a task model without a symmetric expert cannot train symmetric records
    two = tmp_path / "two-tasks"
    from embedder.upcycle import upcycle

    upcycle(two, tiny_dense_dir, moe_mode="task", tasks=("search_query", "search_document"))
    with pytest.raises(ValueError, match="weight 0"):
        train_stage(stage(mixed_file), two, tmp_path / "b", progress=False)
    ok = train_stage(stage(mixed_file, steps=1, by_task=ByTask(symmetric=TaskSpec(weight=0.0))), two,
                     tmp_path / "c", progress=False)
    assert (ok / "model.safetensors").is_file()


def test_distances_are_zero_right_after_upcycling(tmp_path, tiny_dense_dir):
    from embedder.model import MoeBertModel
    from embedder.upcycle import upcycle

    out = upcycle(tmp_path / "fresh", tiny_dense_dir, moe_mode="task")
    dist = task_expert_distances(MoeBertModel.from_pretrained(out))
    assert dist["tasks"] == ["search_query", "search_document", "symmetric"]
    assert all(v == 0.0 for pairs in dist["layers"].values() for v in pairs.values())


def test_resume_continues_exactly_in_task_mode(tmp_path, task_dir, mixed_file):
    full = tmp_path / "full"
    cfg = stage(mixed_file, steps=4, save_every=2, by_task=ByTask(symmetric=TaskSpec(temperature=0.1)))
    train_stage(cfg, task_dir, full, progress=False)
    rows_full = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows_full} == {"retrieval", "symmetric"}  # both tasks within four steps
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-000002", part / "checkpoints" / "step-000002")
    (part / "checkpoints" / LATEST).write_text("step-000002\n")
    (part / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_full[:2]))
    train_stage(cfg, task_dir, part, resume=True, progress=False)
    a = load_file(str(full / "model" / "model.safetensors"))
    b = load_file(str(part / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_part = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows_part] == [r["loss"] for r in rows_full]


@pytest.mark.slow  # torchrun DDP, as the learned mode's DDP test
def test_two_ranks_equal_one_process_in_task_mode(tmp_path, task_dir, mixed_file):
    from trainer.__main__ import main

    args = ["finetune", "--config", str(TINY), "--init", str(task_dir), "--train", str(mixed_file), "--quiet",
            "--steps=3", "--batch_size=16", "--chunk_size=5", "--num_negs=1", "--symmetric=true",
            "--by_task.symmetric.temperature=0.1"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "trainer", *args, "--out", str(tmp_path / "two")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = ([json.loads(x) for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
                for r in ("one", "two"))
    assert [r["task"] for r in one] == [r["task"] for r in two]
    for a, b in zip(one, two, strict=True):
        assert b["contrastive"] == pytest.approx(a["contrastive"], rel=1e-5)
    w1 = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
