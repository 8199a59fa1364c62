"""Embedder: tokenizers + onnxruntime + numpy pooling. Never imports torch.

Picks the onnxruntime provider explicitly and never falls back silently: ``device="cuda"`` raises
unless the session really runs on the CUDA EP (ORT quietly drops to CPU when CUDA libraries are
missing; only ``session.get_providers()`` tells), ``device="auto"`` tries CUDA when the build offers
it and otherwise runs on the CPU, and the choice is logged and kept in ``Embedder.provider``.  On the CPU,
without an explicit ``variant``, the file is the one ``python -m embedder prepare`` measured as the faster on this
CPU (int8 or fp32, ``onnx/variant.json``, see embedder.cpu_variant; ``cpu_variant`` forces one), kept with the
reason in ``Embedder.cpu_choice``; a chosen file that is missing is an error, never a quiet switch to another.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .cpu_variant import INT8, PREPARE, Choice, serving_choice
from .cpu_variant import SETTINGS as CPU_VARIANTS
from .modes import TOPK, get_mode
from .registry import default_model_dir, resolve
from .routing import top_k_routing
from .settings import ONNX_FILES, SEARCH_DOCUMENT, SEARCH_QUERY, EmbeddingSettings

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "cpu")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Encoded:
    vectors: np.ndarray  # (N, D) float32, L2-normalised
    n_tokens: np.ndarray  # (N,) tokens the model saw (after truncation, with special tokens)
    truncated: np.ndarray  # (N,) bool: the text was longer than max_length and was cut


@dataclass(frozen=True)
class Routing:
    """Which experts the router chose for each token of one text, per learned MoE layer, and for a task-expert
    model which task expert every token of its task layers went to."""

    tokens: list[str]
    layers: list[int]
    weights: np.ndarray  # (L, T, k) renormalised routing weights
    experts: np.ndarray  # (L, T, k) expert ids
    num_experts: int
    task: str | None = None  # the task the text was embedded for
    task_layers: tuple[int, ...] = ()  # layers whose expert is the task's (MoTE), not a router's choice


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # (B, H)


def choose_file(onnx_dir: Path, device: str, variant: str | None) -> Path:
    if variant is not None:
        if variant not in ONNX_FILES:
            raise ValueError(f"variant must be one of {sorted(ONNX_FILES)}, got {variant!r}")
        names = [ONNX_FILES[variant]]
    elif device == "cuda":
        names = [ONNX_FILES["fused-fp16"], ONNX_FILES["fused"]]
    else:
        names = [ONNX_FILES["int8"]]
    for name in names:
        if (onnx_dir / name).is_file():
            return onnx_dir / name
    raise FileNotFoundError(f"{onnx_dir}: no {' or '.join(names)}; run `python -m embedder export "
                            f"{onnx_dir.parent}` to build the ONNX files")


def cpu_file(onnx_dir: Path, choice: Choice) -> Path:
    """The CPU file of ``choice``; its absence is an error that says what was chosen and how to build it."""
    if choice.variant == INT8:
        return choose_file(onnx_dir, "cpu", None)  # as before any measurement (its error names `export`)
    path = onnx_dir / choice.file
    if not path.is_file():
        raise FileNotFoundError(f"{onnx_dir}: the CPU variant is {choice.describe()}, but {choice.file} is missing; "
                                f"run `{PREPARE} {onnx_dir.parent}` to build it")
    return path


def require_cuda_ep() -> None:
    if CUDA not in ort.get_available_providers():
        raise RuntimeError(f"device='cuda' but this onnxruntime build has no CUDA EP (available: "
                           f"{ort.get_available_providers()}); install moesearch[gpu] (onnxruntime-gpu) "
                           "on a CUDA host, or use device='cpu'")


def open_session(path: Path, device: str, threads: int | None = None, spinning: bool = False) -> ort.InferenceSession:
    """Create a session on exactly the requested device; raise if that is not what ORT gave us.

    ``spinning``: whether onnxruntime's intra-op threads busy-wait for work after a run.  Off by default: a serving
    process embeds a query and then searches, and spinning threads take the cores the search needs (measured on
    2 cores, one query + hybrid search of 1M int8 points, 120 queries interleaved: embed p50 8.7 -> 5.6 ms, search
    6.9 -> 3.6 ms, total 14.6 -> 9.5 ms with spinning off).  Processes that only embed batches (the ingest workers)
    turn it on: it is worth 1.5-2% of bulk texts/s there (47.2 against 46.5 texts/s, batch 32)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if device == "cuda":
        require_cuda_ep()
        session = ort.InferenceSession(str(path), opts, providers=[CUDA, CPU])
        if session.get_providers()[0] != CUDA:
            raise RuntimeError(f"device='cuda' but onnxruntime fell back to {session.get_providers()} for "
                               f"{path.name}: CUDA/cuDNN libraries are missing or the GPU is not visible")
        return session
    return ort.InferenceSession(str(path), opts, providers=[CPU])


class Embedder:
    """Embeds texts with an exported moesearch model folder.

    >>> emb = Embedder("models/minilm-moe-upcycled")
    >>> emb.embed_documents(["a passage"]).shape  # (1, 384)
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, device: str = "auto", dim: int | None = None,
                 variant: str | None = None, threads: int | None = None, max_length: int | None = None,
                 spinning: bool = False, cpu_variant: str = "auto"):
        """``variant``: one exported file by name (see `ONNX_FILES`), on any device.  Without it, CUDA runs the
        fused file and the CPU the one `embedder.cpu_variant` chose for this CPU, or ``cpu_variant`` "int8" /
        "fp32" when forced (MOESEARCH_ONNX_VARIANT)."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        if cpu_variant not in CPU_VARIANTS:
            raise ValueError(f"cpu_variant must be one of {CPU_VARIANTS}, got {cpu_variant!r}")
        self.cpu_choice: Choice | None = None  # how the CPU file was chosen (None: not by the rule)
        self.model_ref = resolve(model_dir if model_dir else default_model_dir())
        self.model_dir = self.model_ref.folder
        self.settings = EmbeddingSettings.load(self.model_dir)
        self.dim = self.settings.check_dim(dim)
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        if max_length is not None and not 2 <= max_length <= self.settings.max_length:
            raise ValueError(f"max_length must be in 2..{self.settings.max_length}, got {max_length}")
        self.max_length = max_length or self.settings.max_length
        self.tokenizer.enable_truncation(self.max_length)
        onnx_dir = self.model_dir / "onnx"
        self.spinning = spinning  # onnxruntime's threads busy-wait between runs (open_session)
        self.session = self._open(onnx_dir, device, variant, threads, cpu_variant)
        self.provider = self.session.get_providers()[0]
        self.router_outputs = [o.name for o in self.session.get_outputs() if o.name.startswith("router_logits_")]
        self._meta = self.session.get_modelmeta().custom_metadata_map
        # the MoE mode (embedder.modes) and layers the file was exported with: what the routing inputs are
        self.mode = get_mode(self._meta.get("moesearch.arch.moe.mode", TOPK))
        layers = self._meta.get("moesearch.arch.moe.moe_layers", "()")
        self.moe_layers = tuple(int(x) for x in layers.strip("()[] ").split(",") if x.strip())
        extra = [i.name for i in self.session.get_inputs() if i.name not in ("input_ids", "attention_mask")]
        if extra != list(self.mode.inputs if self.moe_layers else ()):
            raise ValueError(f"{self.model_file}: inputs {extra} do not match its MoE mode {self.mode.name!r} "
                             f"(layers {self.moe_layers}); export it again (python -m embedder export)")
        log.info("embedder %s: %s on %s%s", self.settings.model_id, self.model_file.name, self.provider,
                 f", {self.cpu_choice.describe()}" if self.cpu_choice else "")

    def _open(self, onnx_dir: Path, device: str, variant: str | None, threads: int | None,
              cpu_setting: str) -> ort.InferenceSession:
        if device == "auto" and CUDA in ort.get_available_providers():
            try:
                path = choose_file(onnx_dir, "cuda", variant)
                session = open_session(path, "cuda", threads, self.spinning)
                self.model_file = path
                return session
            except (RuntimeError, FileNotFoundError) as exc:
                log.warning("device='auto': CUDA not usable (%s); running on CPU", exc)
        real = "cuda" if device == "cuda" else "cpu"
        if real == "cuda":
            require_cuda_ep()
        if real == "cpu" and variant is None:
            self.cpu_choice = serving_choice(onnx_dir, cpu_setting)
            self.model_file = cpu_file(onnx_dir, self.cpu_choice)
        else:
            self.model_file = choose_file(onnx_dir, real, variant)
        return open_session(self.model_file, real, threads, self.spinning)

    # --- properties -------------------------------------------------------------------------------------
    @property
    def dims(self) -> tuple[int, ...]:
        """The Matryoshka dims this model supports (largest first)."""
        return self.settings.matryoshka_dims

    @property
    def model_id(self) -> str:
        return self.settings.model_id

    @property
    def model_version(self) -> str:
        """Content address of the weights this embedder serves (embedder.registry): part of an index's identity."""
        return self.model_ref.version

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the model was built for (() for a model without tasks)."""
        return self.settings.tasks

    @property
    def moe_mode(self) -> str:
        """The MoE mode's name ("task": task experts, MoTE; "topk": learned router) or "dense" (no MoE layer)."""
        return self.mode.name if self.moe_layers else "dense"

    @property
    def task_layers(self) -> tuple[int, ...]:
        """Layers whose expert the task picks (a mode that takes tasks), () otherwise."""
        return self.moe_layers if self.mode.takes_tasks else ()

    def _routing_inputs(self, task: str | None, batch: int) -> dict[str, np.ndarray]:
        """The extra inputs the mode's routing reads (task mode: ``task_ids``), {} for a dense file."""
        if not self.moe_layers:
            return {}
        return self.mode.feed(self.tasks, None if task is None else self.settings.check_task(task), batch,
                              self.model_id)

    # --- embedding ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], prefix: str = "", batch_size: int = 32,
               progress: Progress | bool | None = None, dim: int | None = None, task: str | None = None) -> Encoded:
        """Embed ``prefix + text`` for each text; batches by length so padding stays small.
        ``task`` picks the task expert of a task-expert model (required there); it does not add a prefix."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        if task is not None:
            self.settings.check_task(task)
        dim = self.settings.check_dim(dim) if dim is not None else self.dim
        n = len(texts)
        out = np.zeros((n, dim), dtype=np.float32)
        n_tokens = np.zeros(n, dtype=np.int64)
        truncated = np.zeros(n, dtype=bool)
        if n == 0:
            return Encoded(out, n_tokens, truncated)
        encs = self.tokenizer.encode_batch([prefix + t for t in texts])
        lengths = np.array([len(e.ids) for e in encs])
        order = np.argsort(-lengths, kind="stable")
        report = _progress(progress, n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            ids, mask = _pad([encs[i].ids for i in idx])
            feed = {"input_ids": ids, "attention_mask": mask, **self._routing_inputs(task, len(idx))}
            hidden = self.session.run(["last_hidden_state"], feed)[0]
            pooled = mean_pool(hidden.astype(np.float32), mask)  # (b, H)
            out[idx] = l2_normalize(pooled[:, :dim])
            report(min(start + batch_size, n), n)
        for i, e in enumerate(encs):
            n_tokens[i] = len(e.ids)
            truncated[i] = bool(e.overflowing)
        if truncated.any():
            log.debug("%d of %d texts were longer than %d tokens and were truncated", truncated.sum(), n,
                      self.max_length)
        return Encoded(out, n_tokens, truncated)

    def embed(self, texts: Sequence[str], task: str = SEARCH_DOCUMENT, batch_size: int = 32,
              progress: Progress | bool | None = None, dim: int | None = None) -> np.ndarray:
        """(N, D) L2-normalised float32 vectors for one task: its prefix, and its expert in a task-expert model.
        ``task`` must be one of `allowed_tasks` (a model without tasks: search_query / search_document)."""
        prefix = self.settings.prefix_for(task)
        return self.encode(texts, prefix, batch_size, progress, dim, task=task).vectors

    @property
    def allowed_tasks(self) -> tuple[str, ...]:
        return self.settings.allowed_tasks

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32, progress: Progress | bool | None = None,
                        dim: int | None = None) -> np.ndarray:
        """(N, D) L2-normalised float32 vectors as ``search_document`` (document prefix / expert)."""
        return self.embed(texts, SEARCH_DOCUMENT, batch_size, progress, dim)

    def embed_query(self, text: str, dim: int | None = None) -> np.ndarray:
        """(D,) L2-normalised float32 vector as ``search_query`` (query prefix / expert)."""
        return self.embed([text], SEARCH_QUERY, dim=dim)[0]

    def route(self, text: str, query: bool = True, task: str | None = None) -> Routing:
        """Router choices per learned MoE layer for each token of one text (what the app charts), and the task
        expert of a task-expert model. ``task`` defaults to search_query / search_document by ``query``."""
        task = task or (SEARCH_QUERY if query else SEARCH_DOCUMENT)
        enc = self.tokenizer.encode(self.settings.prefix_for(task) + text)
        ids, mask = _pad([enc.ids])
        layers = [int(name.rsplit("_", 1)[1]) for name in self.router_outputs]
        T = len(enc.ids)
        if self.router_outputs:
            feed = {"input_ids": ids, "attention_mask": mask, **self._routing_inputs(task, 1)}
            outs = self.session.run(self.router_outputs, feed)
            k = int(self._meta.get("moesearch.arch.moe.num_experts_per_tok", 2))
            weights, experts = top_k_routing(np.stack(outs), k)  # (L, T, k), (L, T, k)
            num_experts = int(outs[0].shape[-1])
        else:
            weights, experts, num_experts = np.zeros((0, T, 1), np.float32), np.zeros((0, T, 1), np.int64), 0
        return Routing(enc.tokens, layers, weights=weights, experts=experts, num_experts=num_experts, task=task,
                       task_layers=self.task_layers)


def _pad(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    T = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), T), dtype=np.int64)
    mask = np.zeros((len(seqs), T), dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 1
    return ids, mask


def _progress(progress: Progress | bool | None, total: int) -> Progress:
    if callable(progress):
        return progress
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="embedding", unit="text")

        def report(done: int, _total: int) -> None:
            bar.update(done - bar.n)
            if done >= _total:
                bar.close()

        return report
    return lambda done, total: None
