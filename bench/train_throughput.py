"""Training throughput at stage-1 shapes against this CPU's matmul ceiling, old and new trainer path, one run.

Model: all-MiniLM-L6-v2 upcycled into a temporary folder (8 experts, top-2, as the recipe). Data: the recipe's
training pairs (``data/trainer/pairs`` from ``python -m trainer data``, or ``--data``), sampled by the stage's
own BatchSampler (one source a batch); synthetic pairs only when no data is found (said in the output). The
stage is ``[pretrain]`` of trainer/configs/recipe.toml (query length 48, document length 128, chunk 64,
bf16, dropout as the model's), with a smaller global batch so a step takes a minute, not ten.

Variants run the same steps (same batches, same dropout seeds) from the same weights, interleaved step by
step; each step's best time over ``--rounds`` counts. Time is this process's CPU time (``time.process_time``):
on a shared machine wall time mostly measures the neighbours (both are reported; with --threads 1 a CPU-second
is a core-second, which is what a run pays).
  old          the path before this change: chunks of ``chunk_size`` texts in input order padded to their
               longest text, GradCache's extra forward always, MoE blocks in fp32 under autocast, AdamW unfused
  +sorted      old + length-sorted chunks (cut by the DP of trainer.gradcache)
  +bf16-moe    old + MoE blocks in bf16
  new          today's defaults (sorted chunks, bf16 MoE, GradCache's second pass skipped for the last chunk,
               so a step that fits one chunk runs without GradCache; one autocast context a pass; fused AdamW)
  new-attn0    new with attention-probability dropout 0 (hidden dropout kept): NOT the same loss. With dropout,
               torch's CPU SDPA runs its math kernel in fp32; without, the flash kernel (fast forward, slow
               backward). Only when named in --variants
Model FLOPs count the real (unpadded) tokens only: 3 x the forward's matmuls (QKV/O, FFN or top-k experts,
router, attention scores and values); GradCache's recomputation and padding are not useful work. The ceiling
is a plain torch GEMM at the model's shapes (tokens x 384 x 1536, 1536 x 384, 384 x 384), bf16 and fp32, with
the same threads, measured before and after the training steps; MFU = model FLOPs/s / best GEMM FLOPs/s of the
precision the steps ran in (bf16 where the hardware has it, else fp32).

    python bench/train_throughput.py [--quick] [--json OUT] [--data FILES] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "trainer" / "configs" / "recipe.toml"
VARIANTS = {  # name: (packing, gradcache, MoE in fp32, attention dropout off, fused AdamW)
    "old": ("sequential", "always", True, False, False),
    "+sorted": ("sorted", "always", True, False, False),
    "+bf16-moe": ("sequential", "always", False, False, False),
    "new": ("sorted", "auto", False, False, True),
    "new-attn0": ("sorted", "auto", False, True, True),
}
DEFAULT_VARIANTS = ("old", "+sorted", "+bf16-moe", "new")


class Fp32Moe:
    """The MoE precision before this change (trainer/encode.py ran each MoE block outside autocast, in fp32),
    reproduced with module hooks for the baseline; nothing's forward is replaced."""

    def __init__(self, model):
        import torch

        self.torch, self.stack = torch, []
        self.handles = [h for b in model.moe_blocks()
                        for h in (b.register_forward_pre_hook(self._enter), b.register_forward_hook(self._exit))]

    def _enter(self, module, args):
        if not self.torch.is_autocast_enabled("cpu"):
            self.stack.append(None)
            return None
        ctx = self.torch.autocast("cpu", enabled=False)
        ctx.__enter__()
        self.stack.append(ctx)
        return (args[0].float(), *args[1:])

    def _exit(self, module, args, output):
        ctx = self.stack.pop()
        if ctx is not None:
            ctx.__exit__(None, None, None)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def model_flops(lengths: list[int], cfg) -> float:
    """Training FLOPs (3 x forward) of sequences of these real lengths through a MoeBertModel of ``cfg``."""
    H, inter, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    moe = set(cfg.moe_layers)
    total = 0.0
    for T in lengths:
        for layer in range(L):
            f = 2 * T * H * H * 4 + 2 * 2 * T * T * H  # QKV + output projections, scores + weighted values
            if layer in moe:
                f += 2 * T * H * cfg.num_experts + cfg.num_experts_per_tok * 2 * 2 * T * H * inter
            else:
                f += 2 * 2 * T * H * inter
            total += f
    return 3.0 * total


def gemm_ceiling(tokens: int, H: int, inter: int, repeats: int) -> dict:
    import torch

    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        best = {}
        for K, N in ((H, inter), (inter, H), (H, H)):
            a, b = torch.randn(tokens, K, dtype=dtype), torch.randn(K, N, dtype=dtype)
            a @ b
            times = []
            for _ in range(repeats):
                t = time.process_time()
                a @ b
                times.append(time.process_time() - t)
            best[f"{tokens}x{K}x{N}"] = 2 * tokens * K * N / min(times)
        out[name] = best
    return out


def synthetic_records(n: int):
    import random

    from trainer.data import Pair

    rng = random.Random(0)
    words = "the of and a in to is was for on river model cell protein data study result method value".split()
    return [Pair(" ".join(rng.choices(words, k=rng.randint(3, 40))),
                 " ".join(rng.choices(words, k=rng.randint(8, 200))), source=f"s{i % 4}") for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="old and new only, batch 64, 2 steps (a few minutes)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--data", nargs="+", help="training JSONL files/folders (default data/trainer/pairs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the recipe runs one per process)")
    p.add_argument("--batch", type=int, help="global batch (default 256; --quick 64); chunk_size stays the recipe's")
    p.add_argument("--steps", type=int, help="steps per variant and round (default 3; --quick 2)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; each step's best time counts")
    p.add_argument("--variants", default="",
                   help=f"comma list from {list(VARIANTS)} (default: all but new-attn0; --quick: old,new)")
    args = p.parse_args(argv)
    import torch

    from embedder.upcycle import upcycle
    from trainer.config import load_config
    from trainer.data import read_training
    from trainer.distributed import Dist
    from trainer.encode import TextEncoder
    from trainer.loop import make_stepper, set_dropout

    torch.set_num_threads(args.threads)
    batch = args.batch or (64 if args.quick else 256)
    steps = args.steps or (2 if args.quick else 3)
    names = [v for v in (args.variants or ("old,new" if args.quick else ",".join(DEFAULT_VARIANTS))).split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variants {bad}; allowed: {list(VARIANTS)}")
    stage = load_config(RECIPE).pretrain
    stage = replace(stage, batch_size=batch, steps=steps, warmup_steps=0)
    data = args.data or ([str(ROOT / "data" / "trainer" / "pairs")] if (ROOT / "data" / "trainer" / "pairs").is_dir()
                         else [])
    records = read_training(data) if data else synthetic_records(4 * batch)
    with tempfile.TemporaryDirectory() as tmp:
        folder = upcycle(Path(tmp) / "minilm-moe", num_experts=8, top_k=2, prefixes=False, seed=0)
        probe = TextEncoder.load(folder)
        cfg = probe.model.config
        tokens = stage.chunk_size * stage.max_doc_length
        gemm = [gemm_ceiling(tokens, cfg.hidden_size, cfg.intermediate_size, 3 if args.quick else 5)]
        useful = {}  # step -> model FLOPs of its batch (real tokens)
        sampler_probe = make_stepper(stage, probe, records, Dist()).sampler
        for s in range(steps):
            b = sampler_probe.batch(s)
            lengths = [len(r) for r in probe.token_rows(b.queries, stage.max_query_length)]
            lengths += [len(r) for r in probe.token_rows(b.docs, stage.max_doc_length)]
            useful[s] = (model_flops(lengths, cfg), sum(lengths))
        enc = probe
        enc.use_bf16(stage.bf16, "train_throughput")
        if stage.dropout >= 0:
            set_dropout(enc.model, stage.dropout)
        attn_p = {m: m.dropout_p for m in enc.model.modules() if hasattr(m, "dropout_p")}
        start = {k: v.clone() for k, v in enc.model.state_dict().items()}
        times: dict[str, dict[int, float]] = {v: {} for v in names}  # best CPU time of each step
        walls: dict[str, dict[int, float]] = {v: {} for v in names}  # best wall time of each step
        rows: dict[str, dict[int, dict]] = {v: {} for v in names}
        for r in range(args.rounds):  # interleaved step by step: the machine's noise hits every variant alike
            for s in range(steps):
                for v in names:
                    packing, cache, fp32_moe, attn0, fused = VARIANTS[v]
                    enc.model.load_state_dict(start)  # every variant runs step s from the same weights
                    for m, p0 in attn_p.items():
                        m.dropout_p = 0.0 if attn0 else p0
                    enc.model.train()
                    hooks = Fp32Moe(enc.model) if fp32_moe else None
                    stepper = make_stepper(replace(stage, packing=packing, gradcache=cache), enc, records, Dist(),
                                           fused_adamw=fused)
                    t0, c0 = time.perf_counter(), time.process_time()
                    row, _ = stepper.run(s)
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    if hooks:
                        hooks.remove()
                    times[v][s] = min(dc, times[v].get(s, float("inf")))
                    walls[v][s] = min(dt, walls[v].get(s, float("inf")))
                    rows[v][s] = row
                    print(f"round {r} step {s} {v:10s} {dc:7.1f} CPU-s {dt:7.1f} s  {batch / dc:6.2f} pairs/CPU-s  "
                          f"{row['source']}", flush=True)
            gemm.append(gemm_ceiling(tokens, cfg.hidden_size, cfg.intermediate_size, 3 if args.quick else 5))
        stats = {v: {"padded_tokens": sum(x["padded_tokens"] for x in rows[v].values()),
                     "chunks": sum(x["chunks"] for x in rows[v].values()),
                     "loss": [rows[v][s]["loss"] for s in range(steps)],
                     "sources": [rows[v][s]["source"] for s in range(steps)]} for v in names}
    ceiling = {k: max(max(g[k].values()) for g in gemm) for k in ("bf16", "fp32")}
    flops = sum(f for f, _ in useful.values())
    real_tokens = sum(n for _, n in useful.values())
    res = {"threads": args.threads, "batch": batch, "steps": steps, "rounds": args.rounds,
           "chunk_size": stage.chunk_size, "max_query_length": stage.max_query_length,
           "max_doc_length": stage.max_doc_length, "bf16": stage.bf16, "bf16_used": enc.bf16,
           "data": data or "synthetic", "records": len(records), "model_flops_per_pass": flops,
           "real_tokens_per_pass": real_tokens,
           "gemm_flops_s": gemm, "ceiling_flops_s": ceiling, "variants": {}}
    for v in names:
        best = sum(times[v].values())
        res["variants"][v] = {"cpu_seconds": best, "step_cpu_seconds": [times[v][s] for s in range(steps)],
                              "wall_seconds": sum(walls[v].values()), "pairs_s": steps * batch / best,
                              "pairs_s_wall": steps * batch / sum(walls[v].values()),
                              "model_flops_s": flops / best, "mfu_bf16": flops / best / ceiling["bf16"],
                              "mfu_fp32": flops / best / ceiling["fp32"],
                              "padding": stats[v]["padded_tokens"] / real_tokens, **stats[v]}
    base = res["variants"].get("old")
    prec = "bf16" if res["bf16_used"] else "fp32"  # MFU against the ceiling of the precision the steps ran in
    print(f"\nGEMM ceiling ({args.threads} thread(s), {tokens} x 384 x 1536 etc.): bf16 {ceiling['bf16'] / 1e9:.0f} "
          f"GFLOP/s, fp32 {ceiling['fp32'] / 1e9:.0f} GFLOP/s; data: {res['data'] if data else 'synthetic'}")
    print(f"{'variant':10s} {'pairs/CPU-s':>11s} {'pairs/s wall':>12s} {'GFLOP/CPU-s':>11s} {'MFU ' + prec:>9s} "
          f"{'padded/real':>12s} {'chunks':>7s} {'x old':>6s}")
    for v, x in res["variants"].items():
        ratio = x["pairs_s"] / base["pairs_s"] if base else float("nan")
        x["speedup_vs_old"] = ratio
        print(f"{v:10s} {x['pairs_s']:11.2f} {x['pairs_s_wall']:12.2f} {x['model_flops_s'] / 1e9:11.1f} "
              f"{x['mfu_' + prec]:9.1%} {x['padding']:12.2f} {x['chunks']:7d} {ratio:6.2f}")
    if base and "new" in res["variants"]:
        spread = statistics.mean(abs(a - b) / abs(a) for a, b in
                                 zip(base["loss"], res["variants"]["new"]["loss"], strict=True))
        print(f"new/old = {res['variants']['new']['speedup_vs_old']:.2f}x (target >= 2); mean relative loss "
              f"difference old vs new ({prec}, dropout draws differ): {spread:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
