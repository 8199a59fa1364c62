"""The MoE modes as strategy objects: one class per mode, one table (`MODES`) keyed by the mode name (`MoESpec.mode`,
config.json's ``moe_mode``, the trainer's ``experts``).

Everything that differs between two ways of picking experts is a method here; the block's dispatch, the export's
file variants, the runtime's batching and the trainer's losses are shared and ask the mode:

* shape (`shape`, `check`, `describe`, `upcycled`): the expert count, top-k and tasks a model of the mode has;
* routing (`route`): the (weights, experts) a block dispatches by, and the router logits it returns (None unless
  the mode is `learned`: only learned logits are graph outputs, balanced by the Switch loss and charted);
* export (`fused_logits`, `example_inputs`): the logits the fused ``com.microsoft::MoE`` node routes on (the gather
  graph is traced from `route`), and example values of the extra graph `inputs`;
* runtime (`feed`): the extra inputs the torch-free runtime feeds for a task;
* trainer (`expert_groups`): the expert parameters that train only on batches of one task.

``topk`` (Nomic Embed v2): a learned router; softmax over the E experts, top-k, renormalised. ``task`` (MoTE):
expert e serves ``tasks[e]``; every token of a sequence goes to its task's expert with weight 1, no router; the
fused node gets the task one-hot as logits (0 for the task's expert, -1e4 for the others: softmax + top-1 puts
weight 1 on it).

Torch-free at import (the runtime reads `MODES`): the methods that take tensors import torch when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .settings import TASKS, check_tasks

if TYPE_CHECKING:
    import torch

    from .config import MoeBertConfig
    from .moe import MoEBlock

TOPK, TASK = "topk", "task"
ROUTING_INPUTS = ("task_ids",)  # the per-sequence inputs (B,) int64 the model's forward passes to its MoE blocks
TASK_LOGIT_OFF = -1e4  # fused task layers: logit of the experts a sequence's task does not use (softmax -> 0)
Routed = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor | None"]  # weights (N, k), experts (N, k), logits


@dataclass(frozen=True)
class MoEMode:
    """How one mode picks experts. ``learned``: a router learns the choice (the block has ``router``; its logits
    are returned and exported as ``router_logits_{layer}``, and the trainer's Switch balancing loss and expert-load
    telemetry apply to exactly those). ``inputs``: graph and model inputs the routing reads besides input_ids /
    attention_mask (from `ROUTING_INPUTS`). ``takes_tasks``: expert e serves ``tasks[e]``; ``default_tasks`` when
    a build names none."""

    name: str
    learned: bool
    inputs: tuple[str, ...] = ()
    takes_tasks: bool = False
    default_tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"a mode name must be an identifier, got {self.name!r}")
        if not set(self.inputs) <= set(ROUTING_INPUTS):
            raise ValueError(f"mode {self.name}: inputs must be among {ROUTING_INPUTS}, got {self.inputs}")
        if self.default_tasks and not self.takes_tasks:
            raise ValueError(f"mode {self.name}: default_tasks without takes_tasks")
        check_tasks(self.default_tasks, allow_empty=True)

    # --- shape (config, upcycle, cards) ---------------------------------------------------------------------
    def shape(self, num_experts: int, top_k: int, tasks: tuple[str, ...]) -> tuple[int, int]:
        """(num_experts, top_k) of a model of this mode with ``tasks`` (what a config derives)."""
        return num_experts, top_k

    def check(self, num_experts: int, top_k: int, tasks) -> tuple[str, ...]:
        """The validated tasks of a spec of this mode; ValueError naming what is allowed."""
        if tasks:
            allowed = " or ".join(f"moe_mode={m.name!r}" for m in MODES.values() if m.takes_tasks)
            raise ValueError(f"tasks are only for {allowed} (allowed modes {MOE_MODES}); got tasks "
                             f"{list(tasks)} with moe_mode={self.name!r}")
        return ()

    def describe(self, num_experts: int, top_k: int, tasks) -> str:
        """The model's shape in words (model cards)."""
        raise NotImplementedError

    def upcycled(self, cfg: MoeBertConfig, base: str) -> str:
        """The card's sentence for a model of this mode freshly upcycled from the dense folder ``base``."""
        raise NotImplementedError

    # --- torch: routing (the block and the gather/scatter graph) and the fused export -----------------------------
    def route(self, block: MoEBlock, x: torch.Tensor, task_ids: torch.Tensor | None, shape: tuple) -> Routed:
        """(weights (N, k) fp32, experts (N, k) int64, router logits (N, E) or None) for the tokens x (N, H) of
        hidden states of ``shape`` ((B, T, H) or (N, H))."""
        raise NotImplementedError

    def fused_logits(self, block, x: torch.Tensor, task_ids: torch.Tensor | None, shape: tuple) -> torch.Tensor:
        """(N, E) logits the fused ``com.microsoft::MoE`` node routes on (softmax, top-k, renormalise) so that it
        picks what `route` picks."""
        raise NotImplementedError

    def check_inputs(self, cfg: MoeBertConfig, input_ids: torch.Tensor, task_ids: torch.Tensor | None) -> None:
        """ValueError for missing or bad routing inputs of a model with MoE layers (eager; skipped at export)."""

    def example_inputs(self, cfg: MoeBertConfig, batch: int) -> dict[str, torch.Tensor]:
        """Example values (batch,) of `inputs` for the export trace."""
        return {}

    # --- runtime ---------------------------------------------------------------------------------------------
    def feed(self, tasks: tuple[str, ...], task: str | None, batch: int, model: str = "this model"
             ) -> dict[str, np.ndarray]:
        """The extra ONNX inputs for ``batch`` texts embedded for ``task`` (a validated name or None)."""
        return {}

    # --- trainer ---------------------------------------------------------------------------------------------
    def expert_groups(self, block: MoEBlock) -> dict[str, list]:
        """{task: parameters that train only on batches of that task}; {} where every batch trains every expert."""
        return {}


@dataclass(frozen=True)
class TopK(MoEMode):
    """A learned router over ``num_experts``; each token goes to its top ``num_experts_per_tok``."""

    def describe(self, num_experts: int, top_k: int, tasks) -> str:
        if num_experts == 1:
            return "one expert: MoE disabled (dense)"
        return f"{num_experts} experts, top-{top_k} routing"

    def upcycled(self, cfg: MoeBertConfig, base: str) -> str:
        return (f"Sparse-upcycled MoE text embedder (untrained): every FFN of layers {cfg.moe_layers} of "
                f"`{base}` copied into {cfg.num_experts} experts, top-{cfg.num_experts_per_tok} routing, "
                f"router initialised N(0, {cfg.router_init_std}). Until trained it embeds exactly like the dense base.")

    def route(self, block, x, task_ids, shape) -> Routed:
        from .moe import route

        logits = block.router(x)  # (N, E)
        weights, experts = route(logits, block.top_k, block.normalize)  # (N, k), (N, k)
        return weights, experts, logits

    def fused_logits(self, block, x, task_ids, shape):
        return block.router(x)  # (N, E)


@dataclass(frozen=True)
class Task(MoEMode):
    """One expert per task (MoTE): the sequence's task picks its expert, weight 1; no router, top-1."""

    def shape(self, num_experts: int, top_k: int, tasks: tuple[str, ...]) -> tuple[int, int]:
        return (len(tasks), 1) if tasks else (num_experts, top_k)

    def check(self, num_experts: int, top_k: int, tasks) -> tuple[str, ...]:
        tasks = check_tasks(tasks)
        if num_experts != len(tasks) or top_k != 1:
            raise ValueError(f"moe_mode={self.name!r} has one expert per task: num_experts must be {len(tasks)} "
                             f"and num_experts_per_tok 1, got {num_experts} and {top_k}")
        return tasks

    def describe(self, num_experts: int, top_k: int, tasks) -> str:
        return f"task experts (MoTE) for {', '.join(tasks or ())}"

    def upcycled(self, cfg: MoeBertConfig, base: str) -> str:
        return (f"Task-expert (MoTE) text embedder (untrained): every FFN of layers {cfg.moe_layers} of "
                f"`{base}` copied into one expert per task ({', '.join(cfg.tasks)}), chosen by the task a "
                "text is embedded for (no router). Until trained every task embeds exactly like the dense base.")

    def route(self, block, x, task_ids, shape) -> Routed:
        import torch

        if task_ids is None or len(shape) != 3:
            raise ValueError(f"a task MoE block needs hidden (B, T, H) and task_ids (B,) naming one of "
                             f"{list(block.tasks)} per sequence")
        experts = task_ids.long()[:, None].expand(-1, shape[1]).reshape(-1, 1)  # (N, 1)
        return torch.ones(experts.shape, dtype=torch.float32, device=experts.device), experts, None

    def fused_logits(self, block, x, task_ids, shape):
        import torch

        tok_task = task_ids[:, None].expand(-1, shape[1]).reshape(-1, 1)  # (N, 1)
        experts = torch.arange(block.num_experts, device=x.device)[None, :]  # (1, E)
        return torch.where(experts == tok_task, 0.0, TASK_LOGIT_OFF).to(x.dtype)  # (N, E)

    def check_inputs(self, cfg, input_ids, task_ids) -> None:
        import torch

        tasks = list(cfg.tasks)
        if task_ids is None:
            raise ValueError(f"this model has task experts: pass task_ids (B,) indexing its tasks {tasks} "
                             "(model.task_tensor(name, B))")
        if torch.compiler.is_exporting():
            return
        if task_ids.shape != input_ids.shape[:1]:
            raise ValueError(f"task_ids must have shape (B,) = ({input_ids.shape[0]},), got {tuple(task_ids.shape)}")
        if int(task_ids.min()) < 0 or int(task_ids.max()) >= len(tasks):
            raise ValueError(f"task_ids must be in 0..{len(tasks) - 1} (tasks {tasks}), got {task_ids.tolist()}")

    def example_inputs(self, cfg, batch: int):
        import torch

        last = len(cfg.tasks) - 1
        return {"task_ids": torch.tensor([i * last // max(batch - 1, 1) for i in range(batch)])}  # (B,): first..last

    def feed(self, tasks, task, batch, model="this model"):
        if task is None:
            raise ValueError(f"{model} has task experts: name a task, one of {tasks}")
        return {"task_ids": np.full(batch, tasks.index(task), dtype=np.int64)}  # (B,)

    def expert_groups(self, block) -> dict[str, list]:
        return {name: list(expert.parameters()) for name, expert in zip(block.tasks, block.experts, strict=True)}


MODES: dict[str, MoEMode] = {m.name: m for m in (
    TopK(TOPK, learned=True),
    Task(TASK, learned=False, inputs=("task_ids",), takes_tasks=True, default_tasks=TASKS),
)}
MOE_MODES = tuple(MODES)


def get_mode(name: str) -> MoEMode:
    """The mode called ``name``; ValueError naming the modes there are."""
    if name not in MODES:
        raise ValueError(f"moe_mode must be one of {MOE_MODES}, got {name!r}")
    return MODES[name]
