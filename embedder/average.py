"""Expert averaging (MoTE's "EA"): a task-expert model folder -> a dense folder of the dense model's size.

Each task layer's experts are averaged, optionally weighted per task, into one plain FFN
(``intermediate.dense`` = mean fc1, ``output.dense`` = mean fc2); every other weight is copied. The result is a
moesearch folder with no MoE layers that keeps the source's tasks in ``moesearch.json`` (so the runtime still
accepts them and applies their prefixes) and loads and exports like any other folder.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from .config import MoeBertConfig
from .folder import write_model_folder
from .model import MoeBertModel
from .modes import TOPK
from .settings import EmbeddingSettings

log = logging.getLogger(__name__)


def task_weights(tasks: tuple[str, ...], weights: dict[str, float] | None) -> torch.Tensor:
    """(E,) averaging weights summing to 1, in the order of ``tasks``; uniform when ``weights`` is None."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(tasks))
    if unknown:
        raise ValueError(f"averaging weights name tasks {unknown}; the model's tasks are {list(tasks)}")
    w = torch.tensor([float(weights.get(t, 1.0 if not weights else 0.0)) for t in tasks], dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        given = dict(zip(tasks, w.tolist(), strict=True))
        raise ValueError(f"averaging weights must be >= 0 and not all 0, got {given}")
    return w / w.sum()  # (E,)


def average_state(model: MoeBertModel, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """State dict of the dense model: task experts -> their weighted mean as the layer's plain FFN."""
    out = {}
    for key, tensor in model.state_dict().items():
        parts = key.split(".")
        if ".moe." not in key:
            out[key] = tensor
        elif parts[4] == "experts" and parts[5] == "0":  # encoder.layer.{i}.moe.experts.0.fc1.weight
            layer, fc, kind = ".".join(parts[:3]), parts[6], parts[7]
            stacked = torch.stack([model.state_dict()[f"{layer}.moe.experts.{e}.{fc}.{kind}"].double()
                                   for e in range(len(w))])  # (E, ...)
            mean = torch.einsum("e,e...->...", w, stacked).to(tensor.dtype)
            target = "intermediate.dense" if fc == "fc1" else "output.dense"
            out[f"{layer}.{target}.{kind}"] = mean
    return out


def average(src: str | Path, out_dir: str | Path, weights: dict[str, float] | None = None,
            model_id: str | None = None) -> Path:
    """Write the expert-averaged dense folder of the task model ``src`` into ``out_dir``."""
    src, out_dir = Path(src), Path(out_dir)
    model = MoeBertModel.from_pretrained(src, dtype=torch.float32).eval()
    cfg = model.config
    if not cfg.has_task_layers:
        raise ValueError(f"{src}: not a task-expert model (moe_mode={cfg.moe_mode!r}); expert averaging needs "
                         "moe_mode='task' (python -m embedder upcycle --experts task ...)")
    tasks = tuple(cfg.tasks)
    w = task_weights(tasks, weights)
    fields = {k: v for k, v in cfg.to_dict().items() if k in MoeBertConfig.__dataclass_fields__}
    fields.update(moe_mode=TOPK, tasks=None, moe_layers=[], num_experts=1, num_experts_per_tok=1)  # dense
    dense = MoeBertModel(MoeBertConfig(**fields)).eval()
    state = average_state(model, w)
    missing, unexpected = dense.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"averaging left weights unfilled {missing[:5]} or unused {unexpected[:5]}")
    settings = EmbeddingSettings.load(src)
    used = dict(zip(tasks, [round(float(x), 6) for x in w], strict=True))
    settings = replace(settings, model_id=model_id or out_dir.name,
                       extra={**settings.extra, "averaged_from": str(src), "average_weights": used})
    write_model_folder(out_dir, dense, settings, src, card=(
        f"# {settings.model_id}\n\nExpert-averaged (MoTE EA) dense embedder: the task experts of `{src.name}` in "
        f"layers {list(cfg.moe_layers)} averaged with weights {used} into one FFN each; the dense model's size and "
        f"cost. Tasks {list(tasks)} keep their prefixes; there are no task experts any more.\n"))
    log.info("averaged %s (%s) -> %s", src, used, out_dir)
    return out_dir
