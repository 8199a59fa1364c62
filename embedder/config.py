"""Model configuration: a BERT encoder whose every other FFN is a Mixture of Experts.

Two MoE modes: ``topk`` (Nomic Embed v2: a learned router picks the top-k of E experts per token) and
``task`` (MoTE: one expert per task, chosen by the task a sequence is embedded for; no router). What differs
between them is the strategy object of `embedder.modes` (``MODES[spec.mode]``); this module validates through it.

`MoESpec` is the frozen, validated description of the MoE part; `MoeBertConfig` is the
HF config (saved as ``config.json``) that carries the BERT fields plus the MoE fields and
validates them through `MoESpec`. Each knob has one name, the HF one (``num_experts_per_tok``,
``norm_topk_prob``), in both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig

from .modes import TOPK, MoEMode, get_mode

EXPERT_ACTIVATIONS = ("gelu", "gelu_tanh")
HIDDEN_ACTS = ("gelu",)


@dataclass(frozen=True)
class MoESpec:
    """Which layers are MoE and how tokens are routed.

    mode: a key of `embedder.modes.MODES`, which validates the experts and tasks: "topk" (learned router,
    top-``num_experts_per_tok`` of ``num_experts``) or "task" (expert e serves ``tasks[e]``;
    ``num_experts == len(tasks)``, one expert per token, no router).
    expert_activation: "gelu" (erf, what BERT/MiniLM was trained with, so upcycling is exact) or
    "gelu_tanh" (the tanh approximation that ORT's fused MoE kernel computes).
    """

    num_layers: int
    num_experts: int = 8
    num_experts_per_tok: int = 2
    moe_layers: tuple[int, ...] | None = None
    expert_activation: str = "gelu"
    norm_topk_prob: bool = True
    router_init_std: float = 0.02
    mode: str = TOPK
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        tasks = get_mode(self.mode).check(self.num_experts, self.num_experts_per_tok, self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if self.num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {self.num_experts}")
        if not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(f"num_experts_per_tok must be in 1..num_experts={self.num_experts}, "
                             f"got {self.num_experts_per_tok}")
        if self.expert_activation not in EXPERT_ACTIVATIONS:
            raise ValueError(f"expert_activation must be one of {EXPERT_ACTIVATIONS}, got {self.expert_activation!r}")
        if self.router_init_std < 0:
            raise ValueError(f"router_init_std must be >= 0, got {self.router_init_std}")
        layers = self.moe_layers
        if layers is None:  # every other layer, starting at the second (Nomic Embed v2): 1, 3, 5 of 6
            layers = tuple(range(1, self.num_layers, 2))
        layers = tuple(sorted({int(i) for i in layers}))
        if any(not 0 <= i < self.num_layers for i in layers):
            raise ValueError(f"moe_layers must be in 0..{self.num_layers - 1}, got {layers}")
        object.__setattr__(self, "moe_layers", layers)


@strict(accept_kwargs=True)
class MoeBertConfig(PreTrainedConfig):
    """BERT encoder fields (as in HF `BertConfig`) plus the MoE fields of `MoESpec`."""

    model_type = "moesearch_bert"

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    num_experts: int = 8
    num_experts_per_tok: int = 2
    moe_layers: list[int] | None = None
    expert_activation: str = "gelu"
    norm_topk_prob: bool = True
    router_init_std: float = 0.02
    router_aux_loss_coef: float = 0.01
    moe_mode: str = TOPK
    tasks: list[str] | None = None  # a mode that takes tasks (moe_mode="task"): expert e serves tasks[e]

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        # the mode's expert count and top-k for its tasks (task mode: one expert per task, top-1)
        self.num_experts, self.num_experts_per_tok = get_mode(self.moe_mode).shape(
            self.num_experts, self.num_experts_per_tok, tuple(self.tasks or ()))
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"hidden_act must be one of {HIDDEN_ACTS}, got {self.hidden_act!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        spec = self.moe_spec  # raises ValueError on bad MoE fields
        self.moe_layers = list(spec.moe_layers)

    @property
    def moe_spec(self) -> MoESpec:
        return MoESpec(
            num_layers=self.num_hidden_layers,
            num_experts=self.num_experts,
            num_experts_per_tok=self.num_experts_per_tok,
            moe_layers=tuple(self.moe_layers) if self.moe_layers is not None else None,
            expert_activation=self.expert_activation,
            norm_topk_prob=self.norm_topk_prob,
            router_init_std=self.router_init_std,
            mode=self.moe_mode,
            tasks=tuple(self.tasks or ()),
        )

    @property
    def moe_strategy(self) -> MoEMode:
        """The MoE mode's strategy object (`embedder.modes`)."""
        return get_mode(self.moe_mode)

    @property
    def has_task_layers(self) -> bool:
        return self.moe_strategy.takes_tasks and bool(self.moe_layers)

    @property
    def routing_inputs(self) -> tuple[str, ...]:
        """Inputs the model takes besides input_ids / attention_mask (``task_ids`` for task layers)."""
        return self.moe_strategy.inputs if self.moe_layers else ()

    def task_ids(self, names: list[str] | tuple[str, ...]) -> list[int]:
        """Expert index of each task name (task mode); ValueError naming the model's tasks for an unknown one."""
        tasks = list(self.tasks or ())
        bad = [n for n in names if n not in tasks]
        if bad:
            raise ValueError(f"task must be one of this model's tasks {tasks}, got {bad[0]!r}")
        return [tasks.index(n) for n in names]

    def metadata(self) -> dict[str, str]:
        """Flat string map of the architecture, for ONNX metadata."""
        spec = asdict(self.moe_spec)
        keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "layer_norm_eps")
        out = {k: str(getattr(self, k)) for k in keys}
        out.update({f"moe.{k}": ",".join(v) if k == "tasks" else str(v) for k, v in spec.items()})
        return out


AutoConfig.register(MoeBertConfig.model_type, MoeBertConfig)
