"""Indexer settings: every knob is an environment variable, declared once below (field, variable, default,
meaning, allowed values) and read here and nowhere else (pydantic-settings).

``IndexerSettings.from_env()`` reads the process environment (``from_env(mapping)`` reads a given mapping, and
keyword overrides win over both); tests and the app may also build ``IndexerSettings(field=value, ...)`` directly,
which reads no environment.  An empty variable means "not set".  A bad value raises ``ValueError`` naming the
variable and what it allows, e.g. ``MOESEARCH_DEVICE must be one of ('auto', 'cpu', 'cuda'), got 'tpu'``.
``python -c "from indexer.settings import IndexerSettings as S; S.print_table()"`` prints them all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

Backend = Literal["edge", "local", "server"]
Device = Literal["auto", "cpu", "cuda"]
OnnxVariant = Literal["auto", "int8", "fp32"]  # embedder.cpu_variant.SETTINGS
KeepFiles = Literal["uploads", "all", "none"]
Quantization = Literal["int8", "none", "binary"]  # the store's QUANTIZATIONS (indexer/store/base.py)
IngestEmbedding = Literal["worker", "in-process"]  # background.WORKER, background.IN_PROCESS
BACKENDS, DEVICES, KEEP_FILES = get_args(Backend), get_args(Device), get_args(KeepFiles)
CHUNK_TOKENS, MAX_CHUNKS, CHARS_PER_TOKEN = 256, 80_000, 4  # defaults of the chunk window and cap (see max_chars)
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("moesearch_environ", default=None)


def env(default: Any, variable: str, meaning: str, **limits) -> Any:
    """One setting: its default, environment variable, meaning and limits (ge=, gt=, le=)."""
    return Field(default, validation_alias=variable, description=meaning, **limits)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` or the one ``from_env`` got)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)
        self.env_vars = {k: v for k, v in environ.items() if v != ""}


class IndexerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    data_dir: Path = env(Path("data"), "MOESEARCH_DATA_DIR", "embedded index (qdrant/) and kept uploads (files/)")
    model_dir: Path | None = env(None, "MOESEARCH_MODEL", "model folder, published NAME (follows its current pointer) "
                                 "or NAME@VERSION (default: the shipped model)")
    device: Device = env("auto", "MOESEARCH_DEVICE", "where the embedder runs")
    onnx_variant: OnnxVariant = env("auto", "MOESEARCH_ONNX_VARIANT", "the ONNX file a CPU serves: auto = what "
                                    "`python -m embedder prepare` measured here (fp32 unless int8 is >= 1.15x as "
                                    "fast; int8 until measured), int8 or fp32 to force one")
    model_poll_seconds: float = env(2.0, "MOESEARCH_MODEL_POLL_SECONDS", "how often a running app reads a published "
                                    "model's current pointer again (a new version is then reported stale)", ge=0)
    dim: int | None = env(None, "MOESEARCH_DIM", "Matryoshka dim of the stored vectors (default: full)", gt=0)
    qdrant_url: str | None = env(None, "QDRANT_URL", "a Qdrant server or cluster (implies backend server)")
    qdrant_api_key: str | None = env(None, "QDRANT_API_KEY", "the server's API key")
    backend: Backend = env("edge", "MOESEARCH_BACKEND", "edge: qdrant-edge in-process; local: qdrant-client local")
    collection: str = env("moesearch", "QDRANT_COLLECTION", "alias search uses; collections are named after the model")
    shard_number: int = env(1, "QDRANT_SHARDS", "cluster layout: shards", ge=1)
    replication_factor: int = env(1, "QDRANT_REPLICATION_FACTOR", "cluster layout: copies of each shard", ge=1)
    write_consistency_factor: int = env(1, "QDRANT_WRITE_CONSISTENCY", "cluster layout: replicas to confirm", ge=1)
    timeout: int = env(60, "QDRANT_TIMEOUT", "seconds per server request", ge=1)
    chunk_tokens: int = env(CHUNK_TOKENS, "MOESEARCH_CHUNK_TOKENS", "chunk window in tokens", ge=16)
    chunk_overlap: int = env(32, "MOESEARCH_CHUNK_OVERLAP", "chunk overlap in tokens (less than half a chunk)", ge=0)
    max_file_mb: float = env(100.0, "MOESEARCH_MAX_FILE_MB", "files above this size are refused", gt=0)
    batch_size: int = env(32, "MOESEARCH_BATCH_SIZE", "chunks embedded and written per batch", ge=1)
    keep_files: KeepFiles = env("uploads", "MOESEARCH_KEEP_FILES", "keep ingested bytes for download")
    hnsw_threshold: int = env(20000, "MOESEARCH_HNSW_THRESHOLD", "build HNSW past this many unindexed points (0 = "
                              "never)", ge=0)
    hnsw_ef: int = env(128, "MOESEARCH_HNSW_EF", "HNSW search breadth", ge=1)
    hnsw_m: int = env(16, "MOESEARCH_HNSW_M", "HNSW links per node", ge=1)
    hnsw_ef_construct: int = env(100, "MOESEARCH_HNSW_EF_CONSTRUCT", "HNSW build breadth", ge=1)
    quantization: Quantization = env("int8", "MOESEARCH_QUANTIZATION", "new collections' dense vectors: int8 codes "
                                     "(or 2-bit binary) in RAM, float32 originals on disk, rescored; none = float32 "
                                     "in RAM. Codes are built with HNSW, past MOESEARCH_HNSW_THRESHOLD points")
    prefetch: int = env(100, "MOESEARCH_PREFETCH", "hybrid search: candidates per arm", ge=1)
    rrf_k: int = env(60, "MOESEARCH_RRF_K", "hybrid search: RRF constant", ge=1)
    min_similarity: float | None = env(None, "MOESEARCH_MIN_SIMILARITY", "search page: \"no good match\" when the "
                                       "best hit's dense cosine is below this (default: the model's calibrated level "
                                       "in indexer/relevance.py; none for a model never calibrated)", ge=-1, le=1)
    bm25_language: str = env("auto", "MOESEARCH_BM25_LANGUAGE", "BM25 words: multilingual (every script: CJK/Thai "
                             "bigrams, word truncation, no stop words), a Snowball language (english, german, ...: "
                             "its stemmer and stop words), or auto (multilingual for a multilingual model, else "
                             "english)")
    bm25_k: float = env(1.2, "MOESEARCH_BM25_K", "BM25 term-frequency saturation", ge=0)
    bm25_b: float = env(0.75, "MOESEARCH_BM25_B", "BM25 length normalisation", ge=0, le=1)
    bm25_avg_len: float = env(256.0, "MOESEARCH_BM25_AVG_LEN", "BM25 average chunk length in words", gt=0)
    max_pages: int = env(5000, "MOESEARCH_MAX_PAGES", "pages / slides / sheets / chapters / e-mail parts per file",
                         gt=0)
    max_rows: int = env(50_000, "MOESEARCH_MAX_ROWS", "spreadsheet and CSV rows per file", gt=0)
    max_unzipped_mb: float = env(256.0, "MOESEARCH_MAX_UNZIPPED_MB", "decompressed size of docx/pptx/xlsx/epub",
                                 gt=0)
    max_zip_entries: int = env(10_000, "MOESEARCH_MAX_ZIP_ENTRIES", "entries in a docx/pptx/xlsx/epub", gt=0)
    max_xml_mb: float = env(128.0, "MOESEARCH_MAX_XML_MB", "what the markup (all but media) of a docx/pptx/xlsx/epub "
                            "unpacks to; parsing takes ~20x that in RAM", gt=0)
    max_image_megapixels: float = env(50.0, "MOESEARCH_MAX_IMAGE_MEGAPIXELS", "an image to OCR", gt=0)
    ocr_seconds: float = env(300.0, "MOESEARCH_OCR_SECONDS", "OCR time budget per file", gt=0)
    ocr_languages: str = env("eng", "MOESEARCH_OCR_LANGUAGES", "Tesseract languages (eng+deu needs "
                             "tesseract-ocr-deu)")
    file_memory_mb: int = env(3072, "MOESEARCH_FILE_MEMORY_MB", "memory (RSS) of the process reading one file; "
                              "over it the file fails", ge=64)
    file_seconds: float = env(600.0, "MOESEARCH_FILE_SECONDS", "time to read and chunk one file; over it the file "
                              "fails", gt=0)
    # the character cap is what the chunk cap implies: MAX_CHUNKS x CHUNK_TOKENS x CHARS_PER_TOKEN =
    # 80,000 x 256 x 4 = 81,920,000 characters.  English runs 3.6-4.5 characters per token on the default model's
    # tokenizer and a chunk advances CHUNK_TOKENS - CHUNK_OVERLAP = 224 tokens, so a 50 MB text file makes 50-65,000
    # chunks and passes both caps; a file whose text could not fit in the chunk cap stops at the character cap early
    max_chars: int = env(MAX_CHUNKS * CHUNK_TOKENS * CHARS_PER_TOKEN, "MOESEARCH_MAX_CHARS", "characters of text "
                         "extracted from one file (streamed readers stop there)", gt=0)
    max_chunks: int = env(MAX_CHUNKS, "MOESEARCH_MAX_CHUNKS", "chunks of one file (~1.5 h to embed on 2 cores)", gt=0)
    text_page_chars: int = env(1_000_000, "MOESEARCH_TEXT_PAGE_CHARS", "a text file's \"page\" (its citation "
                               "unit): up to this many characters, ended at a line break", ge=1000)
    disk_reserve_mb: float = env(256.0, "MOESEARCH_DISK_RESERVE_MB", "free disk space an ingest leaves untouched",
                                 ge=0)
    scratch_dir: Path = env(Path(tempfile.gettempdir()), "MOESEARCH_SCRATCH_DIR", "where search, stats and "
                            "documents copy an embedded index whose disk is read-only or full, to read it there")
    ingest_roots: str = env("", "MOESEARCH_INGEST_ROOTS", "app: server folders an admin may ingest (separated by "
                            "os.pathsep; empty: none)")
    ingest_embedding: IngestEmbedding = env("worker", "MOESEARCH_INGEST_EMBEDDING", "where an ingest or re-index "
                                            "started in the app embeds: worker = its own lower-priority process, so "
                                            "searches stay fast; in-process = the app's process (the old path)")
    ingest_nice: int = env(5, "MOESEARCH_INGEST_NICE", "how much nicer (lower priority) than the app its ingest "
                           "worker and file reader run (0 = the same priority; 5: bench/search_during_ingest.py "
                           "passes with both models, 10 starves the 12-layer model's ingest to 0.72x)", ge=0, le=19)
    ingest_threads: int = env(0, "MOESEARCH_INGEST_THREADS", "onnxruntime threads of the app's ingest worker (0 = "
                              "the cores less one from 5 cores up, else all: its lower priority gives them to "
                              "searches; 1 on 2 cores leaves one free but halves the ingest's embedding)", ge=0)
    ingest_worker_idle_s: float = env(300.0, "MOESEARCH_INGEST_WORKER_IDLE_S", "seconds the app's ingest worker "
                                      "stays loaded after a job, so the next starts at once (0 = stop it with the "
                                      "job; it holds a second copy of the model)", ge=0)
    sync_rescan_s: float = env(300.0, "MOESEARCH_SYNC_RESCAN_S", "synced folders: seconds between full rescans, the "
                               "safety net behind file-system events (0 = only on events and at start)", ge=0)
    sync_debounce_s: float = env(1.0, "MOESEARCH_SYNC_DEBOUNCE_S", "synced folders: quiet time after a file-system "
                                 "event before the folder is synced (a burst of events = one sync)", ge=0)
    sync_watch: bool = env(True, "MOESEARCH_SYNC_WATCH", "synced folders: follow file-system events (inotify via "
                           "watchdog); false = periodic rescans only")
    sync_max_folders: int = env(100, "MOESEARCH_SYNC_MAX_FOLDERS", "synced folders one index may have", ge=1)

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ValueError("; ".join(_explain(error) for error in exc.errors())) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()  # set by from_env only: direct construction reads no environment
        return (init_settings,) if environ is None else (init_settings, _Environment(settings_cls, environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> IndexerSettings:
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        token = _ENVIRON.set(os.environ if env is None else env)
        try:
            return cls(**overrides)
        finally:
            _ENVIRON.reset(token)

    # --- checks that span fields (single-field limits are in the declarations) -----------------------------
    @field_validator("data_dir", "model_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("backend")
    @classmethod
    def _server_when_url(cls, value: str, info: ValidationInfo) -> str:
        return "server" if info.data.get("qdrant_url") else value

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise ValueError(f"QDRANT_COLLECTION must be letters, digits, '-' or '_', got {value!r}")
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, value: int, info: ValidationInfo) -> int:
        tokens = info.data.get("chunk_tokens")
        if tokens is not None and not value < tokens // 2:
            raise ValueError(f"MOESEARCH_CHUNK_OVERLAP must be in 0..{tokens // 2 - 1} (less than half the chunk), "
                             f"got {value}")
        return value

    @field_validator("ocr_languages")
    @classmethod
    def _languages(cls, value: str) -> str:
        if not all(part.replace("_", "").isalpha() for part in value.split("+")):
            raise ValueError(f"MOESEARCH_OCR_LANGUAGES must be Tesseract language codes joined by '+' (eng, "
                             f"eng+deu), got {value!r}")
        return value

    @model_validator(mode="after")
    def _server_needs_url(self) -> IndexerSettings:
        if self.backend == "server" and not self.qdrant_url:
            raise ValueError("MOESEARCH_BACKEND 'server' needs QDRANT_URL")
        return self

    # --- derived values ---------------------------------------------------------------------------------------
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
        return type(self)(**{**self.model_dump(), **changes})

    def describe(self) -> dict:
        """Settings as plain JSON-able values, with the API key masked."""
        out = self.model_dump(mode="json")
        if out.get("qdrant_api_key"):
            out["qdrant_api_key"] = "***"
        return out

    @classmethod
    def print_table(cls) -> None:
        for name, info in cls.model_fields.items():
            print(f"{info.validation_alias:32} {info.default!s:10} {info.description} ({name})")


def variable(field: str) -> str:
    """The environment variable of a setting."""
    return IndexerSettings.model_fields[field].validation_alias


def _explain(error: dict) -> str:
    """A pydantic error as one sentence naming the variable and what it allows."""
    loc = error.get("loc") or ()
    field = next((f for f, info in IndexerSettings.model_fields.items()
                  if loc and loc[0] in (f, info.validation_alias)), None)
    name = variable(field) if field else ".".join(map(str, loc)) or "settings"
    got, ctx, kind = error.get("input"), error.get("ctx") or {}, error["type"]
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"{name} must be one of {get_args(IndexerSettings.model_fields[field].annotation)}, got {got!r}"
    if kind.startswith("int_"):
        return f"{name} must be an integer, got {got!r}"
    if kind.startswith("float_"):
        return f"{name} must be a number, got {got!r}"
    if kind == "greater_than":
        return f"{name} must be positive, got {got!r}" if ctx.get("gt") == 0 else f"{name} must be > {ctx['gt']}"
    bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        return f"{name} must be {bounds[kind]} {limit}, got {got!r}"
    if kind == "extra_forbidden":
        return f"unknown setting {name!r}"
    return f"{name}: {error['msg']} (got {got!r})"
