"""What the app shows about the model: its card (``ModelInfo``) and the router's choices for a text
(``RoutingView``, trimmed to the text's own tokens).  The app reads these through ``Pipeline`` and never touches
onnxruntime or the tokenizer itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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
    return ModelInfo(embedder.model_id, str(embedder.model_dir), summary, session[0], session,
                     tuple(ort.get_available_providers()), ort.__version__,
                     Path(getattr(embedder, "model_file", "")).name, card, has_router(embedder))


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
    return RoutingView(list(r.tokens[start:stop]), list(r.layers), r.experts[:, start:stop],
                       r.weights[:, start:stop], int(r.num_experts))
