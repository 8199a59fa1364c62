"""Run telemetry: one JSON line per step in ``metrics.jsonl`` and PNG plots saved with the run.

Each line has the step, the losses (total, contrastive, per Matryoshka dim, balancing), the learning rate,
the gradient norm, and the per-layer expert load (fraction of top-k token assignments per expert).
``loss.png`` plots the loss curves, ``expert_load.png`` one panel per MoE layer with one line per expert.
For task-expert (MoTE) models `task_expert_distances` measures how far training moved the task experts apart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"


class Telemetry:
    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / METRICS
        self.enabled = enabled
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)

    def truncate(self, step: int) -> None:
        """On resume: drop lines from steps at or after ``step`` (they will be logged again)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] < step]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        return read_metrics(self.path)

    def plot(self) -> list[Path]:
        return plot_run(self.path) if self.enabled else []


def task_expert_distances(model) -> dict:
    """Per task layer, the relative distance between every two task experts: ``||a - b|| / mean(||a||, ||b||)``
    over all their weights and biases (fc1 and fc2) flattened. 0 for copies (a freshly upcycled model)."""
    import torch

    tasks = list(model.config.tasks or ())
    layers = {}
    for i, layer in enumerate(model.encoder.layer):
        if not (layer.is_moe and layer.moe.mode.takes_tasks):
            continue
        flat = [torch.cat([p.detach().float().reshape(-1) for p in e.parameters()]) for e in layer.moe.experts]
        pairs = {}
        for a in range(len(flat)):
            for b in range(a + 1, len(flat)):
                scale = (flat[a].norm() + flat[b].norm()) / 2
                pairs[f"{tasks[a]}|{tasks[b]}"] = float((flat[a] - flat[b]).norm() / scale.clamp_min(1e-12))
        layers[str(i)] = pairs
    return {"tasks": tasks, "metric": "||a - b|| / mean(||a||, ||b||), all expert weights", "layers": layers}


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plot_run(metrics_path: Path) -> list[Path]:
    """Write loss.png and (for MoE runs) expert_load.png next to ``metrics_path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    if not rows:
        return []
    out = []
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "contrastive"):
        ax.plot(steps, [r[key] for r in rows], label=key)
    dims = sorted({k for r in rows for k in r.get("dims", {})}, key=int)
    for dim in dims:
        ax.plot(steps, [r.get("dims", {}).get(dim, float("nan")) for r in rows], lw=0.8, ls="--", label=f"dim {dim}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(metrics_path.parent.name)
    if any(r.get("balancing") for r in rows):
        ax2 = ax.twinx()
        ax2.plot(steps, [r.get("balancing", 0.0) for r in rows], color="gray", lw=0.8, label="balancing")
        ax2.set_ylabel("balancing loss (1 = uniform)")
        ax2.legend(loc="upper center", fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = metrics_path.parent / "loss.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    out.append(p)
    loads = [r["load"] for r in rows if r.get("load")]
    if loads:
        layers = sorted(loads[0], key=int)
        fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.5), squeeze=False)
        load_steps = [r["step"] for r in rows if r.get("load")]
        for ax, layer in zip(axes[0], layers, strict=True):
            per_expert = list(zip(*[row[layer] for row in loads], strict=True))
            for e, series in enumerate(per_expert):
                ax.plot(load_steps, series, lw=1, label=f"e{e}")
            ax.axhline(1 / len(per_expert), color="black", lw=0.6, ls=":")
            ax.set_title(f"layer {layer}")
            ax.set_xlabel("step")
            ax.set_ylim(0, max(0.5, max(max(s) for s in per_expert) * 1.1))
        axes[0][0].set_ylabel("fraction of token assignments")
        axes[0][-1].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        p = metrics_path.parent / "expert_load.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        out.append(p)
    return out
