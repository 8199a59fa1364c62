"""Checkpoints: a model folder the embedder can export, plus the optimizer/scheduler state and the step.

``RUN/checkpoints/step-000120/`` holds config.json + model.safetensors + tokenizer files + moesearch.json +
README.md (so ``python -m embedder export`` works on it as on any model folder) and ``trainer_state.pt``
(optimizer, scheduler, step, config) that ``--resume`` reads. ``RUN/checkpoints/latest`` names the newest one.
A checkpoint is written to a temporary folder and renamed, so a killed run never leaves half of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from embedder.folder import CARD, write_model_folder
from embedder.settings import EmbeddingSettings

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
LATEST = "latest"
RESUME_FREE = ("save_every", "log_every")  # may change on resume without changing the run


def save_model_folder(model, settings: EmbeddingSettings, src_folder: Path, dst: Path, card: str | None = None,
                      extra: dict | None = None) -> Path:
    """Write ``model`` as a model folder (``embedder.folder``): the tokenizer files of ``src_folder``, moesearch.json
    with ``extra`` added, ``card`` as README (default: ``src_folder``'s)."""
    return write_model_folder(dst, model, replace(settings, extra={**settings.extra, **(extra or {})}), src_folder,
                              card if card is not None else src_folder / CARD)


def save_checkpoint(run_dir: Path, step: int, model, settings: EmbeddingSettings, src_folder: Path,
                    optimizer, scheduler, config: dict, extra: dict | None = None) -> Path:
    card = (f"# {settings.model_id}: {config.get('name', 'training')} checkpoint, step {step}\n\n"
            f"Trained from `{src_folder}` by `python -m trainer {config.get('name', '')}`; the run folder "
            f"(`{run_dir}`) holds stage_config.json, metrics.jsonl and the loss / expert-load plots.\n")
    ckpts = run_dir / "checkpoints"
    final = ckpts / f"step-{step:06d}"
    tmp = ckpts / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_folder(model, settings, src_folder, tmp, card=card, extra={"step": step, **(extra or {})})
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "config": config, "torch": torch.__version__}, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    (ckpts / (LATEST + ".tmp")).write_text(final.name + "\n")
    os.replace(ckpts / (LATEST + ".tmp"), ckpts / LATEST)
    log.info("checkpoint %s", final)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path}: checkpoint named by {pointer} has no {STATE_FILE}")
    return path


def load_state(ckpt: Path) -> dict:
    return torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)


def check_resumable(state: dict, config: dict, ckpt: Path, defaults: dict | None = None) -> None:
    """Refuse to resume with a different configuration (the result would not be the same run).

    ``defaults``: the stage's default config; a key the checkpoint predates counts as unchanged when the
    current value is its default (a run saved before that setting existed ran with the default behaviour)."""
    saved = state.get("config") or {}
    a = {k: v for k, v in saved.items() if k not in RESUME_FREE}
    b = {k: v for k, v in config.items() if k not in RESUME_FREE
         and (k in saved or defaults is None or k not in defaults or v != defaults[k])}
    if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"{ckpt}: saved with a different stage config (keys {diff}); resume with the same config")
