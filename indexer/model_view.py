"""What the app shows about the model: its card (``ModelInfo``), the router's choices for a text (``RoutingView``,
trimmed to the text's own tokens), and which model the settings name right now (``ModelTracker``: a published
model's ``current`` pointer is followed live, without a restart).  The app reads these through ``Pipeline`` and
never touches onnxruntime or the tokenizer itself."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0  # how often (at most) the configured model's pointer is read again


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    model_dir: str
    summary: str  # the model card's prose (README.md without headings), at most 1500 characters
    provider: str  # the onnxruntime provider the live session runs on
    session_providers: tuple[str, ...]
    available_providers: tuple[str, ...]
    onnxruntime_version: str
    model_file: str
    settings: dict = field(default_factory=dict)  # moesearch.json
    has_router: bool = False  # learned MoE routers whose choices can be charted
    version: str = ""  # the weights' content address (embedder.registry)
    label: str = ""  # name@version
    moe_mode: str = ""  # "topk" (learned router) | "task" (task experts, MoTE) | "dense"
    tasks: tuple[str, ...] = ()  # the tasks a task-expert model was built for
    task_layers: tuple[int, ...] = ()  # layers whose expert is picked by the task (task-expert models)
    onnx_variant: str = ""  # int8 | fp32 (the CPU's measured or forced choice), else the served file's variant
    variant_summary: str = ""  # e.g. "fp32 (int8 1.08x fp32 on this CPU, below the 1.15x rule)"
    int8_texts_per_s: float | None = None  # `python -m embedder prepare`'s timing on this CPU (None: not measured)
    fp32_texts_per_s: float | None = None


@dataclass(frozen=True)
class BuiltModel:
    """One of the models built at install (embedder.settings.BUILT_MODELS), as the Status page lists them."""

    name: str
    languages: str
    built: bool  # its ONNX files exist (else `python -m embedder prepare` builds it when it is selected)
    serving: bool  # the embedder in service runs it
    setting: str  # how to select it

    def __post_init__(self) -> None:
        if not self.name or not self.setting.startswith("MOESEARCH_MODEL="):
            raise ValueError(f"a built model needs a name and a MOESEARCH_MODEL setting, got {self}")


def built_models(serving_dir: str | os.PathLike | None) -> list[BuiltModel]:
    """The models this server can build from its pip wheels, which are built, and which one serves."""
    from embedder.settings import BASE_LANGUAGES, BUILT_MODELS, MODELS_DIR

    serving = Path(serving_dir).resolve() if serving_dir else None
    return [BuiltModel(name, BASE_LANGUAGES[base], (MODELS_DIR / name / "onnx" / "manifest.json").is_file(),
                       serving == (MODELS_DIR / name).resolve(), f"MOESEARCH_MODEL={name}")
            for name, base in BUILT_MODELS.items()]


@dataclass(frozen=True)
class RoutingView:
    """Router choices for one text, restricted to the text's own tokens (no prefix, [CLS] or [SEP])."""

    tokens: list[str]
    layers: list[int]  # model layer index of each MoE layer
    experts: np.ndarray  # (L, T, k) expert ids
    weights: np.ndarray  # (L, T, k) routing weights (sum to 1 over k)
    num_experts: int

    @property
    def usage(self) -> np.ndarray:
        """(L, E): share of the tokens' routing weight each expert received, per layer (rows sum to 1)."""
        out = np.zeros((len(self.layers), self.num_experts))
        for layer in range(len(self.layers)):
            np.add.at(out[layer], self.experts[layer].ravel(), self.weights[layer].ravel())
        total = out.sum(axis=1, keepdims=True)
        return out / np.maximum(total, 1e-12)


def has_router(embedder) -> bool:
    return bool(getattr(embedder, "router_outputs", None))


def onnx_variant(embedder) -> dict:
    """The ONNX file the embedder serves and why: on a CPU without an explicit variant, the choice of
    embedder.cpu_variant (int8 or fp32, both timings, the rule or the forcing setting); otherwise the file's own
    export variant (a CUDA session, or a variant its caller named)."""
    choice = getattr(embedder, "cpu_choice", None)
    if choice is not None:
        return choice.to_dict()
    from embedder.settings import ONNX_FILES

    name = Path(getattr(embedder, "model_file", "") or "").name
    variant = next((v for v, file in ONNX_FILES.items() if file == name), "")
    why = "the CUDA file" if getattr(embedder, "provider", "") == "CUDAExecutionProvider" else "named explicitly"
    return {"variant": variant, "file": name, "setting": "", "int8_texts_per_s": None, "fp32_texts_per_s": None,
            "int8_over_fp32": None, "min_int8_speedup": None, "unmeasured": "",
            "summary": f"{variant or name or 'unknown'} ({why})"}


def model_info(embedder) -> ModelInfo:
    import onnxruntime as ort

    session = tuple(embedder.session.get_providers())
    folder = Path(embedder.model_dir)
    summary = ""
    readme = folder / "README.md"
    if readme.is_file():
        paragraphs = [p.strip() for p in readme.read_text(encoding="utf-8", errors="replace").split("\n\n")]
        summary = "\n\n".join(p for p in paragraphs if p and not p.startswith("#"))[:1500]
    raw = folder / "moesearch.json"
    card = json.loads(raw.read_text()) if raw.is_file() else {}
    ref = getattr(embedder, "model_ref", None)
    variant = onnx_variant(embedder)
    return ModelInfo(embedder.model_id, str(embedder.model_dir), summary, session[0], session,
                     tuple(ort.get_available_providers()), ort.__version__,
                     Path(getattr(embedder, "model_file", "")).name, card, has_router(embedder),
                     version=getattr(ref, "version", ""), label=getattr(ref, "label", ""),
                     moe_mode=getattr(embedder, "moe_mode", ""), tasks=tuple(getattr(embedder, "tasks", ())),
                     task_layers=tuple(getattr(embedder, "task_layers", ())), onnx_variant=variant["variant"],
                     variant_summary=variant["summary"], int8_texts_per_s=variant["int8_texts_per_s"],
                     fp32_texts_per_s=variant["fp32_texts_per_s"])


def routing_view(embedder, text: str, query: bool = True) -> RoutingView | None:
    """Which experts the router picks for ``text`` (as a query or a document); None for a model without routers.
    One model run; the prefix, [CLS] and [SEP] are cut off."""
    if not has_router(embedder):
        return None
    r = embedder.route(text, query=query)
    prefix = embedder.settings.query_prefix if query else embedder.settings.document_prefix
    start = 1 + len(embedder.tokenizer.encode(prefix, add_special_tokens=False).ids)  # after [CLS] + prefix
    stop = len(r.tokens) - 1 if r.tokens and r.tokens[-1] == "[SEP]" else len(r.tokens)
    if stop <= start:  # nothing but the prefix: show every token rather than nothing
        start, stop = 0, len(r.tokens)
    return RoutingView(list(r.tokens[start:stop]), list(r.layers), weights=r.weights[:, start:stop],
                       experts=r.experts[:, start:stop], num_experts=int(r.num_experts))


class ModelTracker:
    """The model the settings name (``MOESEARCH_MODEL``: a folder, a published NAME or NAME@VERSION), followed
    live: ``poll`` reads the name's ``current`` pointer again (at most every ``POLL_SECONDS``; a plain folder's
    weights are re-hashed only when their mtime changes) and loads a new version when it moved.  A version that
    cannot be loaded yet (e.g. its ONNX files are not exported) is reported in ``error`` and tried again on the
    next poll; the model loaded before stays.  Loading never touches the index: the pipeline decides what serves."""

    def __init__(self, spec: str | os.PathLike | None, load: Callable[[Path], object], embedder=None,
                 poll_seconds: float = POLL_SECONDS):
        self.spec = spec
        self._load = load
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._polled = time.monotonic()
        self.error = ""  # why the version the settings name now cannot be loaded ("" = it is the one loaded)
        self.pending = None  # its ModelRef while it cannot be loaded
        try:
            self._seen = self.resolve()
        except (OSError, ValueError):
            if embedder is None:
                raise
            self._seen = getattr(embedder, "model_ref", None)
        self.embedder = embedder if embedder is not None else self._load(self._seen.folder)

    def resolve(self, spec: str | os.PathLike | None = None):
        from embedder.registry import default_model_dir, resolve

        spec = spec if spec is not None else self.spec
        return resolve(spec if spec else default_model_dir())

    @property
    def label(self) -> str:
        """name@version of the model the settings name now (even when it could not be loaded)."""
        ref = self.pending or getattr(self.embedder, "model_ref", None)
        return ref.label if ref is not None else str(getattr(self.embedder, "model_id", ""))

    def poll(self, force: bool = False) -> bool:
        """Follow the settings' model; True when a new version was loaded."""
        now = time.monotonic()
        if not force and now - self._polled < self.poll_seconds:
            return False
        with self._lock:
            self._polled = now
            try:
                ref = self.resolve()
            except (OSError, ValueError) as exc:
                self.error = f"{self.spec}: {exc}"
                return False
            if ref == self._seen:
                self.pending, self.error = None, ""
                return False
            try:
                embedder = self._load(ref.folder)
            except Exception as exc:  # missing ONNX files, a broken folder: report, keep serving, retry later
                self.pending, self.error = ref, f"{ref.label} cannot be loaded yet: {exc}"
                log.warning("%s", self.error)
                return False
            log.info("model %s: now %s (was %s)", self.spec, ref.label, getattr(self._seen, "label", "?"))
            self.embedder, self._seen, self.pending, self.error = embedder, ref, None, ""
            return True

    def load(self, spec: str | os.PathLike, *candidates) -> object:
        """An embedder for ``spec`` (reindex --model): one of ``candidates`` (or the tracked one) when it is that
        exact version already, else loaded."""
        ref = self.resolve(spec)
        for emb in (self.embedder, *candidates):
            if emb is not None and getattr(emb, "model_ref", None) == ref:
                return emb
        return self._load(ref.folder)

    def follow(self, embedder) -> bool:
        """After a switch to ``embedder``'s model: when it is a published version of the model the settings name by
        name (not pinned to one version), point that name's ``current`` at it, so the settings follow the index (a
        rollback stays rolled back).  True when the pointer moved."""
        from embedder.registry import current_version, set_current

        ref = getattr(embedder, "model_ref", None)
        if ref is None or not ref.name or "@" in Path(str(self.spec or "")).name:
            return False
        try:
            mine = self.resolve()
        except (OSError, ValueError):
            return False
        root = ref.folder.parent
        if mine.name != ref.name or mine.folder.parent != root or current_version(root) == ref.version:
            return False
        try:
            set_current(root, ref.version)
        except OSError as exc:
            log.warning("cannot move %s/current to %s: %s", root, ref.version, exc)
            return False
        with self._lock:
            self.embedder, self._seen, self.pending, self.error = embedder, ref, None, ""
        return True
