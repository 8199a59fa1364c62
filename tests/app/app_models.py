"""The lifecycle tests' second tiny model, exported to the CPU int8 file (see tests/model_variants.py)."""

from __future__ import annotations

from pathlib import Path

from model_variants import WITH_ONNX
from model_variants import retrained as _retrained

__all__ = ["WITH_ONNX", "retrained"]


def retrained(folder: Path, dst: Path, scale: float = 0.5) -> Path:
    return _retrained(folder, dst, scale, export_int8=True)
