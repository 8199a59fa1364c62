"""A contrastive training stage (stage 1 pretraining or stage 2 finetuning), single process or DDP.

Every step: draw the global batch (a function of seed and step), take this rank's slice, run the GradCache
step on the global loss (InfoNCE with in-batch + hard negatives, Matryoshka dims, router load balancing),
sum gradients over ranks, clip, AdamW, schedule. The dropout RNG is reseeded from (seed, step), so a run
resumed from a checkpoint (weights + optimizer + scheduler + step) continues exactly as if never stopped.

A model with task experts (MoTE) trains task-aware: every batch holds one record task; a retrieval batch runs
its queries through the search_query expert and its documents through the search_document expert, a symmetric
batch both sides through the symmetric expert, each task with its own temperature (``by_task``). The task
experts a batch does not use get no gradient and no optimizer update (not even weight decay), so they stay
exactly as they were.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed
from .batching import MIXED, SIDE_TASKS, BatchSampler
from .checkpoint import check_resumable, latest_checkpoint, load_state, save_checkpoint
from .config import ByTask, StageConfig
from .data import ReadReport, read_training
from .encode import TextEncoder
from .gradcache import LossFn, StepResult, cached_step
from .losses import matryoshka_info_nce
from .telemetry import Telemetry, task_expert_distances

log = logging.getLogger(__name__)


def stage_dims(cfg: StageConfig, encoder: TextEncoder) -> tuple[int, ...]:
    dims = cfg.matryoshka_dims or encoder.settings.matryoshka_dims
    dims = tuple(d for d in dims if d <= encoder.hidden_size)
    return dims or (encoder.hidden_size,)


def make_loss(cfg: StageConfig, dims: tuple[int, ...], temperature: float | None = None):
    weights = cfg.matryoshka_weights if len(cfg.matryoshka_weights) == len(dims) else ()
    temperature = temperature or cfg.temperature

    def loss_fn(q, d, n):
        total, per_dim = matryoshka_info_nce(q, d, dims, temperature, weights=weights, extra=n,
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


def make_optimizer(model: torch.nn.Module, cfg: StageConfig, fused: bool = True) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, fused=fused)  # fused: 4x faster


def set_dropout(model: torch.nn.Module, p: float) -> None:
    from embedder.model import MoeBertModel

    if not isinstance(model, MoeBertModel):
        raise ValueError(f"dropout={p} needs a moesearch model folder, got a {type(model).__name__}; leave dropout "
                         "< 0 to keep the model's own")
    model.set_dropout(p)


@dataclass
class Stepper:
    """One optimisation step of a stage: batch -> GradCache step -> gradient sync -> clip -> AdamW -> schedule."""

    cfg: StageConfig
    encoder: TextEncoder
    sampler: BatchSampler
    loss_fns: dict[str, LossFn]  # per batch task ("mixed" without task batches)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    d: distributed.Dist
    aux_coef: float
    top_k: int

    def __post_init__(self) -> None:
        model = self.encoder.model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.task_params: dict[str, list[torch.nn.Parameter]] = {t: [] for t in self.encoder.tasks}
        # the mode's parameter groups (embedder.modes): a task's experts train on that task's batches only
        for block in model.expert_blocks() if self.encoder.is_moe else []:
            for name, params in block.mode.expert_groups(block).items():
                self.task_params[name].extend(params)

    def side_tasks(self, task: str) -> dict[str, int] | None:
        """{"q", "d", "n"} -> task expert id for a batch of record task ``task``; None for a model without tasks."""
        if not self.encoder.tasks:
            return None
        q, d = self.encoder.model.config.task_ids(list(SIDE_TASKS[task]))
        return {"q": q, "d": d, "n": d}

    def run(self, step: int) -> tuple[dict, StepResult]:
        cfg, d = self.cfg, self.d
        t0 = time.time()
        torch.manual_seed(cfg.seed * 1_000_003 + step * 1009 + d.rank)  # dropout: a function of step and rank
        batch = self.sampler.batch(step).slice(d.rank, d.world, cfg.num_negs)
        self.optimizer.zero_grad(set_to_none=True)
        res = cached_step(self.encoder, batch.queries, batch.docs, batch.negs, self.loss_fns[batch.task],
                          max_query_length=cfg.max_query_length, max_doc_length=cfg.max_doc_length,
                          chunk_size=cfg.chunk_size, aux_coef=self.aux_coef, top_k=self.top_k, d=d,
                          tasks=self.side_tasks(batch.task), packing=cfg.packing, cache=cfg.gradcache)
        for p in self.params:  # same update rule with 1 or N ranks: an unused parameter has a zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        distributed.sync_grads(self.params, d)
        active = set(SIDE_TASKS[batch.task]) if self.encoder.tasks else set()
        for name, params in self.task_params.items():
            if name not in active:  # an expert this batch's task does not use: no gradient, no AdamW update
                for p in params:
                    p.grad = None
        gnorm = torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None],
                                               cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        row = {"step": step, "loss": res.loss, "contrastive": res.contrastive, "balancing": res.balancing,
               "dims": res.parts, "lr": lr, "grad_norm": float(gnorm), "seconds": round(time.time() - t0, 3),
               "source": batch.sources[0] if cfg.source_batches else "mixed", "tokens": res.n_tokens,
               "task": batch.task, "chunks": res.chunks, "padded_tokens": res.padded_tokens}
        if active:
            row["experts"] = sorted(active)
        if res.counts is not None:
            frac = res.counts / res.counts.sum(-1, keepdim=True).clamp_min(1)  # (L, E)
            layers = self.encoder.model.router_layers()
            row["load"] = {str(layer): [round(x, 5) for x in frac[i].tolist()] for i, layer in enumerate(layers)}
        return row, res


def make_stepper(cfg: StageConfig, encoder: TextEncoder, records: list, d: distributed.Dist, *,
                 fused_adamw: bool = True) -> Stepper:
    """Sampler, losses (per task), optimizer and schedule of a stage on ``records``, for ``encoder``."""
    model = encoder.model
    task_batches = cfg.task_batches or bool(encoder.tasks)
    if not task_batches and cfg.by_task != ByTask():
        raise ValueError("by_task settings apply to batches of one task: set task_batches=true (a model with "
                         "task experts always trains so)")
    task_weights = {t: cfg.by_task.spec(t).weight for t in SIDE_TASKS} if task_batches else None
    sampler = BatchSampler(records, cfg.batch_size, seed=cfg.seed, num_negs=cfg.num_negs,
                           source_batches=cfg.source_batches, settings=encoder.settings, use_prefixes=cfg.prefixes,
                           source_weights=cfg.source_weights, task_weights=task_weights)
    for task in sampler.tasks if encoder.tasks else []:
        missing = [t for t in SIDE_TASKS[task] if t not in encoder.tasks]
        if missing:
            raise ValueError(f"{task} records train the task experts {list(SIDE_TASKS[task])}, but the model has "
                             f"{list(encoder.tasks)}; give {task} weight 0 (by_task.{task}.weight=0) or upcycle "
                             "with those tasks")
    dims = stage_dims(cfg, encoder)
    loss_fns = {t: make_loss(cfg, dims, cfg.by_task.spec(t).temperature) for t in sampler.tasks}
    loss_fns[MIXED] = make_loss(cfg, dims)
    aux_coef = cfg.aux_loss_coef if cfg.aux_loss_coef >= 0 else float(model.config.router_aux_loss_coef)
    optimizer = make_optimizer(model, cfg, fused=fused_adamw)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    return Stepper(cfg, encoder, sampler, loss_fns, optimizer, scheduler, d, aux_coef,
                   int(model.config.num_experts_per_tok))


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
    encoder.use_bf16(cfg.bf16, f"stage {cfg.name}")
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
    stepper = make_stepper(cfg, encoder, records, d)
    telemetry = Telemetry(run_dir, enabled=d.main)
    start = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"{run_dir}: --resume given but no checkpoint to resume from")
        state = load_state(ckpt)
        check_resumable(state, config, ckpt, defaults=asdict(StageConfig(name=cfg.name)))
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
        stepper.optimizer.load_state_dict(state["optimizer"])
        stepper.scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        telemetry.truncate(start)
        if d.main:
            log.info("resumed %s at step %d", ckpt, start)
    distributed.broadcast_params(model, d)
    if d.main:
        (run_dir / "stage_config.json").write_text(json.dumps({**config, "bf16_used": encoder.bf16}, indent=2) + "\n")
    optimizer, scheduler = stepper.optimizer, stepper.scheduler
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=cfg.name, unit="step", disable=not (progress and d.main),
               initial=start, total=cfg.steps)
    last = None
    for step in bar:
        row, res = stepper.run(step)
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
        if encoder.tasks:
            dist = task_expert_distances(model)
            (run_dir / "expert_distance.json").write_text(json.dumps(dist, indent=2) + "\n")
            log.info("task expert distances: %s", json.dumps(dist["layers"]))
        telemetry.plot()
    distributed.barrier(d)
    return final
