"""Indexer settings: every knob is an environment variable, read here and nowhere else.

``IndexerSettings.from_env()`` reads the process environment; tests and the app may build the dataclass
directly (or ``from_env(overrides)``) instead.  Validation happens in ``__post_init__`` and names the variable.

| variable | default | meaning |
|---|---|---|
| ``MOESEARCH_DATA_DIR`` | ``./data`` | embedded index (``qdrant/``) and kept uploads (``files/``) live here |
| ``MOESEARCH_MODEL`` | shipped model | model folder for the embedder (see ``embedder.settings``) |
| ``MOESEARCH_DEVICE`` | ``auto`` | ``auto`` / ``cpu`` / ``cuda`` |
| ``MOESEARCH_DIM`` | full | Matryoshka dim of the stored vectors |
| ``MOESEARCH_BACKEND`` | ``edge`` | ``edge`` (qdrant-edge, in-process) or ``local`` (qdrant-client local mode); a set
  ``QDRANT_URL`` always means the server backend |
| ``QDRANT_URL`` / ``QDRANT_API_KEY`` | unset | Qdrant server or cluster |
| ``QDRANT_COLLECTION`` | ``moesearch`` | alias that search uses; real collections are named after the model |
| ``QDRANT_SHARDS`` / ``QDRANT_REPLICATION_FACTOR`` / ``QDRANT_WRITE_CONSISTENCY`` | 1 / 1 / 1 | cluster layout |
| ``QDRANT_TIMEOUT`` | 60 | seconds per server request |
| ``MOESEARCH_CHUNK_TOKENS`` / ``MOESEARCH_CHUNK_OVERLAP`` | 256 / 32 | chunk window and overlap in tokens |
| ``MOESEARCH_MAX_FILE_MB`` | 100 | files above this size are refused |
| ``MOESEARCH_BATCH_SIZE`` | 32 | chunks embedded and written per batch |
| ``MOESEARCH_KEEP_FILES`` | ``uploads`` | keep ingested bytes for download: ``uploads`` / ``all`` / ``none`` |
| ``MOESEARCH_HNSW_THRESHOLD`` | 20000 | build HNSW once this many points are not yet indexed (0 = never) |
| ``MOESEARCH_HNSW_EF`` / ``MOESEARCH_HNSW_M`` / ``MOESEARCH_HNSW_EF_CONSTRUCT`` | 128 / 16 / 100 | HNSW |
| ``MOESEARCH_PREFETCH`` / ``MOESEARCH_RRF_K`` | 100 / 60 | hybrid: candidates per arm, RRF constant |
| ``MOESEARCH_BM25_LANGUAGE`` / ``_K`` / ``_B`` / ``_AVG_LEN`` | english / 1.2 / 0.75 / 256 | BM25 term weights |
| ``MOESEARCH_MAX_PAGES`` | 5000 | pages / slides / sheets / chapters / e-mail parts per file |
| ``MOESEARCH_MAX_ROWS`` | 50000 | spreadsheet and CSV rows per file |
| ``MOESEARCH_MAX_UNZIPPED_MB`` / ``MOESEARCH_MAX_ZIP_ENTRIES`` | 256 / 10000 | docx/pptx/xlsx/epub containers |
| ``MOESEARCH_MAX_IMAGE_MEGAPIXELS`` | 50 | an image to OCR (PDF pages are rendered below it) |
| ``MOESEARCH_OCR_SECONDS`` / ``MOESEARCH_OCR_LANGUAGES`` | 300 / ``eng`` | OCR time budget per file; Tesseract
  languages (``eng+deu`` needs Debian's ``tesseract-ocr-deu``) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

BACKENDS = ("edge", "local", "server")
DEVICES = ("auto", "cpu", "cuda")
KEEP_FILES = ("uploads", "all", "none")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class IndexerSettings:
    data_dir: Path = Path("data")
    model_dir: Path | None = None
    device: str = "auto"
    dim: int | None = None
    backend: str = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    collection: str = "moesearch"
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    timeout: int = 60
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    max_file_mb: float = 100.0
    batch_size: int = 32
    keep_files: str = "uploads"
    hnsw_threshold: int = 20000
    hnsw_ef: int = 128
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    prefetch: int = 100
    rrf_k: int = 60
    bm25_language: str = "english"
    bm25_k: float = 1.2
    bm25_b: float = 0.75
    bm25_avg_len: float = 256.0
    max_pages: int = 5000
    max_rows: int = 50_000
    max_unzipped_mb: float = 256.0
    max_zip_entries: int = 10_000
    max_image_megapixels: float = 50.0
    ocr_seconds: float = 300.0
    ocr_languages: str = "eng"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.model_dir is not None:
            object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())
        if self.qdrant_url:
            object.__setattr__(self, "backend", "server")
        if self.backend not in BACKENDS:
            raise ValueError(f"MOESEARCH_BACKEND must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "server" and not self.qdrant_url:
            raise ValueError("backend 'server' needs QDRANT_URL")
        if self.device not in DEVICES:
            raise ValueError(f"MOESEARCH_DEVICE must be one of {DEVICES}, got {self.device!r}")
        if self.keep_files not in KEEP_FILES:
            raise ValueError(f"MOESEARCH_KEEP_FILES must be one of {KEEP_FILES}, got {self.keep_files!r}")
        if self.dim is not None and self.dim <= 0:
            raise ValueError(f"MOESEARCH_DIM must be positive, got {self.dim}")
        if not self.collection or not all(c.isalnum() or c in "-_" for c in self.collection):
            raise ValueError(f"QDRANT_COLLECTION must be letters, digits, '-' or '_', got {self.collection!r}")
        for name in ("shard_number", "replication_factor", "write_consistency_factor", "timeout", "batch_size",
                     "hnsw_ef", "hnsw_m", "hnsw_ef_construct", "prefetch", "rrf_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.chunk_tokens < 16:
            raise ValueError(f"MOESEARCH_CHUNK_TOKENS must be >= 16, got {self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ValueError(f"MOESEARCH_CHUNK_OVERLAP must be in 0..{self.chunk_tokens // 2 - 1} (less than half "
                             f"the chunk), got {self.chunk_overlap}")
        if self.max_file_mb <= 0:
            raise ValueError(f"MOESEARCH_MAX_FILE_MB must be positive, got {self.max_file_mb}")
        if self.hnsw_threshold < 0:
            raise ValueError(f"MOESEARCH_HNSW_THRESHOLD must be >= 0, got {self.hnsw_threshold}")
        if not 0.0 <= self.bm25_b <= 1.0 or self.bm25_k < 0 or self.bm25_avg_len <= 0:
            raise ValueError("BM25 needs 0 <= MOESEARCH_BM25_B <= 1, MOESEARCH_BM25_K >= 0, MOESEARCH_BM25_AVG_LEN > 0")
        for name in ("max_pages", "max_rows", "max_unzipped_mb", "max_zip_entries", "max_image_megapixels",
                     "ocr_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MOESEARCH_{name.upper()} must be positive, got {getattr(self, name)}")
        if not all(part.replace("_", "").isalpha() for part in self.ocr_languages.split("+")):
            raise ValueError(f"MOESEARCH_OCR_LANGUAGES must be Tesseract language codes joined by '+' (eng, "
                             f"eng+deu), got {self.ocr_languages!r}")

    @property
    def store_dir(self) -> Path:
        """Where the embedded store (edge or local) keeps its collections."""
        return self.data_dir / "qdrant"

    @property
    def files_dir(self) -> Path:
        """Where kept copies of ingested files live (for download)."""
        return self.data_dir / "files"

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def with_(self, **changes) -> IndexerSettings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> IndexerSettings:
        env = os.environ if env is None else env
        dim = env.get("MOESEARCH_DIM")
        values = dict(
            data_dir=Path(env.get("MOESEARCH_DATA_DIR") or "data"),
            model_dir=Path(env["MOESEARCH_MODEL"]) if env.get("MOESEARCH_MODEL") else None,
            device=env.get("MOESEARCH_DEVICE") or "auto",
            dim=_int(env, "MOESEARCH_DIM", 0) if dim else None,
            backend=env.get("MOESEARCH_BACKEND") or "edge",
            qdrant_url=env.get("QDRANT_URL") or None,
            qdrant_api_key=env.get("QDRANT_API_KEY") or None,
            collection=env.get("QDRANT_COLLECTION") or "moesearch",
            shard_number=_int(env, "QDRANT_SHARDS", 1),
            replication_factor=_int(env, "QDRANT_REPLICATION_FACTOR", 1),
            write_consistency_factor=_int(env, "QDRANT_WRITE_CONSISTENCY", 1),
            timeout=_int(env, "QDRANT_TIMEOUT", 60),
            chunk_tokens=_int(env, "MOESEARCH_CHUNK_TOKENS", 256),
            chunk_overlap=_int(env, "MOESEARCH_CHUNK_OVERLAP", 32),
            max_file_mb=_float(env, "MOESEARCH_MAX_FILE_MB", 100.0),
            batch_size=_int(env, "MOESEARCH_BATCH_SIZE", 32),
            keep_files=env.get("MOESEARCH_KEEP_FILES") or "uploads",
            hnsw_threshold=_int(env, "MOESEARCH_HNSW_THRESHOLD", 20000),
            hnsw_ef=_int(env, "MOESEARCH_HNSW_EF", 128),
            hnsw_m=_int(env, "MOESEARCH_HNSW_M", 16),
            hnsw_ef_construct=_int(env, "MOESEARCH_HNSW_EF_CONSTRUCT", 100),
            prefetch=_int(env, "MOESEARCH_PREFETCH", 100),
            rrf_k=_int(env, "MOESEARCH_RRF_K", 60),
            bm25_language=env.get("MOESEARCH_BM25_LANGUAGE") or "english",
            bm25_k=_float(env, "MOESEARCH_BM25_K", 1.2),
            bm25_b=_float(env, "MOESEARCH_BM25_B", 0.75),
            bm25_avg_len=_float(env, "MOESEARCH_BM25_AVG_LEN", 256.0),
            max_pages=_int(env, "MOESEARCH_MAX_PAGES", 5000),
            max_rows=_int(env, "MOESEARCH_MAX_ROWS", 50_000),
            max_unzipped_mb=_float(env, "MOESEARCH_MAX_UNZIPPED_MB", 256.0),
            max_zip_entries=_int(env, "MOESEARCH_MAX_ZIP_ENTRIES", 10_000),
            max_image_megapixels=_float(env, "MOESEARCH_MAX_IMAGE_MEGAPIXELS", 50.0),
            ocr_seconds=_float(env, "MOESEARCH_OCR_SECONDS", 300.0),
            ocr_languages=env.get("MOESEARCH_OCR_LANGUAGES") or "eng",
        )
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    def describe(self) -> dict:
        """Settings as plain JSON-able values, with the API key masked."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}
        if out.get("qdrant_api_key"):
            out["qdrant_api_key"] = "***"
        return out
