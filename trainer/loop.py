"""A contrastive training stage (stage 1 pretraining or stage 2 finetuning), single process or DDP.

Every step: draw the global batch (a function of seed and step), take this rank's slice, run the GradCache
step on the global loss (InfoNCE with in-batch + hard negatives, Matryoshka dims, router load balancing),
sum gradients over ranks, clip, AdamW, schedule. The dropout RNG is reseeded from (seed, step), so a run
resumed from a checkpoint (weights + optimizer + scheduler + step) continues exactly as if never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from .batching import BatchSampler
from .checkpoint import check_resumable, latest_checkpoint, load_state, save_checkpoint
from .config import StageConfig
from .data import ReadReport, read_training
from .encode import TextEncoder
from .gradcache import cached_step
from .losses import matryoshka_info_nce
from .telemetry import Telemetry

log = logging.getLogger(__name__)


def stage_dims(cfg: StageConfig, encoder: TextEncoder) -> tuple[int, ...]:
    dims = cfg.matryoshka_dims or encoder.settings.matryoshka_dims
    dims = tuple(d for d in dims if d <= encoder.hidden_size)
    return dims or (encoder.hidden_size,)


def make_loss(cfg: StageConfig, dims: tuple[int, ...]):
    weights = cfg.matryoshka_weights if len(cfg.matryoshka_weights) == len(dims) else ()

    def loss_fn(q, d, n):
        total, per_dim = matryoshka_info_nce(q, d, dims, cfg.temperature, weights=weights, extra=n,
                                             symmetric=cfg.symmetric)
        return total, {str(k): v.detach() for k, v in per_dim.items()}

    return loss_fn


def lr_lambda(cfg: StageConfig):
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.schedule == "constant":
            return 1.0
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        frac = min(max(frac, 0.0), 1.0)
        return 1.0 - frac * 0.9 if cfg.schedule == "linear" else 0.1 + 0.45 * (1 + math.cos(math.pi * frac))

    return f


def make_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def set_dropout(model: torch.nn.Module, p: float) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        setattr(model.config, name, p)
    for m in model.modules():  # attention dropout is a float on the module, not an nn.Dropout
        if hasattr(m, "dropout_p"):
            m.dropout_p = p


def train_stage(cfg: StageConfig, init: str | Path, run_dir: str | Path, *, resume: bool = False,
                progress: bool = True) -> Path:
    """Train ``init`` (a moesearch model folder) on ``cfg.train``; return the final model folder (run/model)."""
    d = distributed.setup()
    run_dir = Path(run_dir)
    config = asdict(cfg)
    encoder = TextEncoder.load(init)
    if not encoder.is_moe:
        raise ValueError(f"{init}: training needs a moesearch model folder; upcycle the dense base first "
                         "(`python -m embedder upcycle`, num_experts=1 for a dense run)")
    model = encoder.model.to(d.device)
    encoder.bf16 = cfg.bf16
    if cfg.dropout >= 0:
        set_dropout(model, cfg.dropout)
    s = encoder.settings
    if not cfg.prefixes and (s.query_prefix or s.document_prefix):
        raise ValueError(f"{init}: moesearch.json names prefixes ({s.query_prefix!r}, {s.document_prefix!r}) that the "
                         "runtime will add; training with prefixes=false would not match (upcycle with prefixes off)")
    report = ReadReport()
    records = read_training(cfg.train, report)
    if cfg.max_records:
        records = records[: cfg.max_records]
    if d.main:
        log.info("%s: %d records from %s (%d problems)", cfg.name, len(records), list(report.counts),
                 len(report.errors))
    if cfg.batch_size % d.world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of ranks ({d.world})")
    sampler = BatchSampler(records, cfg.batch_size, seed=cfg.seed, num_negs=cfg.num_negs,
                           source_batches=cfg.source_batches, settings=encoder.settings, use_prefixes=cfg.prefixes,
                           source_weights=cfg.source_weights)
    dims = stage_dims(cfg, encoder)
    loss_fn = make_loss(cfg, dims)
    aux_coef = cfg.aux_loss_coef if cfg.aux_loss_coef >= 0 else float(model.config.router_aux_loss_coef)
    top_k = int(model.config.num_experts_per_tok)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    params = [p for p in model.parameters() if p.requires_grad]
    telemetry = Telemetry(run_dir, enabled=d.main)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"{run_dir}: --resume given but no checkpoint to resume from")
        state = load_state(ckpt)
        check_resumable(state, config, ckpt)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        telemetry.truncate(start)
        if d.main:
            log.info("resumed %s at step %d", ckpt, start)
    distributed.broadcast_params(model, d)
    if d.main:
        (run_dir / "stage_config.json").write_text(json.dumps(config, indent=2) + "\n")
    moe_layers = list(getattr(model.config, "moe_layers", []))
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=cfg.name, unit="step", disable=not (progress and d.main),
               initial=start, total=cfg.steps)
    last = None
    for step in bar:
        t0 = time.time()
        torch.manual_seed(cfg.seed * 1_000_003 + step * 1009 + d.rank)  # dropout: a function of step and rank
        batch = sampler.batch(step).slice(d.rank, d.world, cfg.num_negs)
        optimizer.zero_grad(set_to_none=True)
        res = cached_step(encoder, batch.queries, batch.docs, batch.negs, loss_fn,
                          max_query_length=cfg.max_query_length, max_doc_length=cfg.max_doc_length,
                          chunk_size=cfg.chunk_size, aux_coef=aux_coef, top_k=top_k, d=d)
        for p in params:  # same update rule with 1 or N ranks: an unused parameter has a zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        distributed.sync_grads(params, d)
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        row = {"step": step, "loss": res.loss, "contrastive": res.contrastive, "balancing": res.balancing,
               "dims": res.parts, "lr": lr, "grad_norm": float(gnorm), "seconds": round(time.time() - t0, 3),
               "source": batch.sources[0] if cfg.source_batches else "mixed", "tokens": res.n_tokens}
        if res.counts is not None:
            frac = res.counts / res.counts.sum(-1, keepdim=True).clamp_min(1)  # (L, E)
            row["load"] = {str(layer): [round(x, 5) for x in frac[i].tolist()] for i, layer in enumerate(moe_layers)}
        if d.main and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            telemetry.log(row)
        bar.set_postfix(loss=f"{res.loss:.4f}")
        last = step + 1
        if cfg.save_every and last % cfg.save_every == 0 and last < cfg.steps and d.main:
            save_checkpoint(run_dir, last, model, encoder.settings, encoder.folder, optimizer, scheduler, config)
            telemetry.plot()
    bar.close()
    final = run_dir / "model"
    if d.main:
        if last is not None:
            save_checkpoint(run_dir, cfg.steps, model, encoder.settings, encoder.folder, optimizer, scheduler,
                            config)
        ckpt = latest_checkpoint(run_dir)
        import shutil

        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(ckpt, final, ignore=shutil.ignore_patterns("trainer_state.pt"))
        telemetry.plot()
    distributed.barrier(d)
    return final
