"""DDP: two CPU processes (torchrun, gloo) give the single-process loss and weights on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "trainer" / "configs" / "tiny.toml"


def run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # two torchrun processes (gloo): about 40 s here
def test_two_ranks_equal_one_process(tmp_path, moe_dir, train_file):
    args = ["pretrain", "--config", str(TINY), "--init", str(moe_dir), "--train", str(train_file), "--quiet",
            "--steps=3", "--batch_size=16", "--chunk_size=5", "--aux_loss_coef=0.1", "--symmetric=true"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0  # the single-process reference, in this process
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainer", *args,
         "--out", str(tmp_path / "two")], ROOT)
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [0, 1, 2]
    for a, b in zip(one, two, strict=True):
        assert b["contrastive"] == pytest.approx(a["contrastive"], rel=1e-5)
        assert b["balancing"] == pytest.approx(a["balancing"], rel=1e-5)
        assert b["tokens"] == a["tokens"]
        assert b["load"] == a["load"]
    w1 = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    w0 = load_file(str(moe_dir / "model.safetensors"))
    assert any(not torch.equal(w1[k], w0[k]) for k in w1)  # training moved the weights
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
