"""A second tiny model for the lifecycle tests (indexer and app): a model folder's weights moved by seeded noise,
same model id -- what a retrain published into the same name makes. ``tests/`` is on sys.path (its conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

WITH_ONNX = ("trainer_state.pt",)  # publish the exported files too (they were exported from these weights)


def retrained(folder: Path, dst: Path, scale: float = 0.5, export_int8: bool = False) -> Path:
    """A copy of ``folder`` with every weight matrix moved by noise of ``scale`` times its spread, so the two
    models' vectors differ well beyond int8 batching noise; ``export_int8`` also writes its CPU int8 file."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("onnx"))
    w = load_file(str(dst / "model.safetensors"))
    rng = np.random.default_rng(0)
    for key in sorted(w):
        if w[key].ndim == 2:
            w[key] = (w[key] + rng.normal(0, scale * float(w[key].std()), w[key].shape)).astype(w[key].dtype)
    save_file(w, str(dst / "model.safetensors"))
    if export_int8:
        from embedder.export import export

        export(dst, variants=("int8",))
    return dst
