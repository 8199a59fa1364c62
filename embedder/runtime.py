"""Embedder: tokenizers + onnxruntime + numpy pooling. Never imports torch.

Picks the onnxruntime provider explicitly and never falls back silently: ``device="cuda"`` raises
unless the session really runs on the CUDA EP (ORT quietly drops to CPU when CUDA libraries are
missing; only ``session.get_providers()`` tells), ``device="auto"`` tries CUDA when the build offers
it and otherwise runs the int8 CPU file, and the choice is logged and kept in ``Embedder.provider``.
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

from .settings import EmbeddingSettings, default_model_dir

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "cpu")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
VARIANT_FILES = {"int8": "model.cpu-int8.onnx", "fused": "model.onnx", "fused-fp16": "model.fp16.onnx",
                 "gather": "model.gather-fp32.onnx", "dense": "model.dense-fp32.onnx"}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Encoded:
    vectors: np.ndarray  # (N, D) float32, L2-normalised
    n_tokens: np.ndarray  # (N,) tokens the model saw (after truncation, with special tokens)
    truncated: np.ndarray  # (N,) bool: the text was longer than max_length and was cut


@dataclass(frozen=True)
class Routing:
    """Which experts the router chose for each token of one text, per MoE layer."""

    tokens: list[str]
    layers: list[int]
    experts: np.ndarray  # (L, T, k) expert ids
    weights: np.ndarray  # (L, T, k) renormalised routing weights
    num_experts: int


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # (B, H)


def top_k_routing(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over experts, top-k, weights renormalised over the k (as the model routes)."""
    z = np.exp(logits - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)  # (..., E)
    experts = np.argsort(-probs, axis=-1, kind="stable")[..., :k]  # (..., k)
    weights = np.take_along_axis(probs, experts, -1)
    return experts, weights / weights.sum(-1, keepdims=True)


def choose_file(onnx_dir: Path, device: str, variant: str | None) -> Path:
    if variant is not None:
        if variant not in VARIANT_FILES:
            raise ValueError(f"variant must be one of {sorted(VARIANT_FILES)}, got {variant!r}")
        names = [VARIANT_FILES[variant]]
    elif device == "cuda":
        names = [VARIANT_FILES["fused-fp16"], VARIANT_FILES["fused"]]
    else:
        names = [VARIANT_FILES["int8"]]
    for name in names:
        if (onnx_dir / name).is_file():
            return onnx_dir / name
    raise FileNotFoundError(f"{onnx_dir}: no {' or '.join(names)}; run `python -m embedder export "
                            f"{onnx_dir.parent}` to build the ONNX files")


def require_cuda_ep() -> None:
    if CUDA not in ort.get_available_providers():
        raise RuntimeError(f"device='cuda' but this onnxruntime build has no CUDA EP (available: "
                           f"{ort.get_available_providers()}); install moesearch[gpu] (onnxruntime-gpu) "
                           "on a CUDA host, or use device='cpu'")


def open_session(path: Path, device: str, threads: int | None = None) -> ort.InferenceSession:
    """Create a session on exactly the requested device; raise if that is not what ORT gave us."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
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
                 variant: str | None = None, threads: int | None = None, max_length: int | None = None):
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.settings = EmbeddingSettings.load(self.model_dir)
        self.dim = self.settings.check_dim(dim)
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        if max_length is not None and not 2 <= max_length <= self.settings.max_length:
            raise ValueError(f"max_length must be in 2..{self.settings.max_length}, got {max_length}")
        self.max_length = max_length or self.settings.max_length
        self.tokenizer.enable_truncation(self.max_length)
        onnx_dir = self.model_dir / "onnx"
        self.session = self._open(onnx_dir, device, variant, threads)
        self.provider = self.session.get_providers()[0]
        self.router_outputs = [o.name for o in self.session.get_outputs() if o.name.startswith("router_logits_")]
        log.info("embedder %s: %s on %s", self.settings.model_id, self.model_file.name, self.provider)

    def _open(self, onnx_dir: Path, device: str, variant: str | None, threads: int | None) -> ort.InferenceSession:
        if device == "auto" and CUDA in ort.get_available_providers():
            try:
                path = choose_file(onnx_dir, "cuda", variant)
                session = open_session(path, "cuda", threads)
                self.model_file = path
                return session
            except (RuntimeError, FileNotFoundError) as exc:
                log.warning("device='auto': CUDA not usable (%s); running on CPU", exc)
        real = "cuda" if device == "cuda" else "cpu"
        if real == "cuda":
            require_cuda_ep()
        self.model_file = choose_file(onnx_dir, real, variant)
        return open_session(self.model_file, real, threads)

    # --- properties -------------------------------------------------------------------------------------
    @property
    def dims(self) -> tuple[int, ...]:
        """The Matryoshka dims this model supports (largest first)."""
        return self.settings.matryoshka_dims

    @property
    def model_id(self) -> str:
        return self.settings.model_id

    # --- embedding ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], prefix: str = "", batch_size: int = 32,
               progress: Progress | bool | None = None, dim: int | None = None) -> Encoded:
        """Embed ``prefix + text`` for each text; batches by length so padding stays small."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
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
            hidden = self.session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
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

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32, progress: Progress | bool | None = None,
                        dim: int | None = None) -> np.ndarray:
        """(N, D) L2-normalised float32 vectors, with the document prefix."""
        return self.encode(texts, self.settings.document_prefix, batch_size, progress, dim).vectors

    def embed_query(self, text: str, dim: int | None = None) -> np.ndarray:
        """(D,) L2-normalised float32 vector, with the query prefix."""
        return self.encode([text], self.settings.query_prefix, dim=dim).vectors[0]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens and without truncation (for chunking)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def route(self, text: str, query: bool = True) -> Routing:
        """Router choices per MoE layer for each token of one text (what the app charts)."""
        prefix = self.settings.query_prefix if query else self.settings.document_prefix
        enc = self.tokenizer.encode(prefix + text)
        ids, mask = _pad([enc.ids])
        outs = self.session.run(self.router_outputs, {"input_ids": ids, "attention_mask": mask})
        meta = self.session.get_modelmeta().custom_metadata_map
        k = int(meta.get("moesearch.arch.moe.top_k", 2))
        experts, weights = top_k_routing(np.stack(outs), k)
        layers = [int(name.rsplit("_", 1)[1]) for name in self.router_outputs]
        return Routing(enc.tokens, layers, experts, weights, int(outs[0].shape[-1]) if outs else 0)


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
