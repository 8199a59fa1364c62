"""Embedding settings (``moesearch.json``) and model-folder resolution.

This module is torch-free: the runtime, the indexer and the app read it.
A model folder holds ``config.json`` + ``model.safetensors`` (torch side), ``tokenizer.json``,
``moesearch.json`` (this file's :class:`EmbeddingSettings`) and, after export, ``onnx/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SETTINGS_FILE = "moesearch.json"
POOLINGS = ("mean",)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
# The trained model the app ships (written by the trainer), and the upcycled base used until it exists.
SHIPPED_MODEL = MODELS_DIR / "moesearch-minilm-moe"
UPCYCLED_MODEL = MODELS_DIR / "minilm-moe-upcycled"


@dataclass(frozen=True)
class EmbeddingSettings:
    """How a model folder turns token states into search vectors."""

    model_id: str
    pooling: str = "mean"
    normalize: bool = True
    query_prefix: str = "search_query: "
    document_prefix: str = "search_document: "
    matryoshka_dims: tuple[int, ...] = (384, 256, 128, 64)
    max_length: int = 512
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model_id or not isinstance(self.model_id, str):
            raise ValueError("model_id must be a non-empty string")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        dims = tuple(int(d) for d in self.matryoshka_dims)
        if not dims or any(d <= 0 for d in dims) or list(dims) != sorted(set(dims), reverse=True):
            raise ValueError(f"matryoshka_dims must be distinct positive ints, largest first, got {dims}")
        object.__setattr__(self, "matryoshka_dims", dims)
        if not isinstance(self.max_length, int) or self.max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {self.max_length!r}")

    @property
    def dim(self) -> int:
        return self.matryoshka_dims[0]

    def check_dim(self, dim: int | None) -> int:
        """Return the output dim for a requested Matryoshka truncation (None = full)."""
        if dim is None:
            return self.dim
        if dim not in self.matryoshka_dims:
            raise ValueError(f"dim must be one of {self.matryoshka_dims}, got {dim}")
        return dim

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / SETTINGS_FILE
        data = asdict(self)
        data["matryoshka_dims"] = list(self.matryoshka_dims)
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> EmbeddingSettings:
        path = Path(folder) / SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; is {folder} a moesearch model folder?")
        data = json.loads(path.read_text())
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        data["matryoshka_dims"] = tuple(data.get("matryoshka_dims", cls.matryoshka_dims))
        return cls(**data)


def default_model_dir() -> Path:
    """``MOESEARCH_MODEL`` if set, else the shipped trained model, else the upcycled base."""
    env = os.environ.get("MOESEARCH_MODEL")
    if env:
        return Path(env).expanduser()
    if (SHIPPED_MODEL / "config.json").is_file():
        return SHIPPED_MODEL
    return UPCYCLED_MODEL


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
