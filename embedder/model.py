"""The torch encoder: BERT with every other FFN replaced by a Mixture of Experts (Nomic Embed v2 design).

Parameter names follow HF ``BertModel`` (``embeddings.*``, ``encoder.layer.{i}.attention.*``,
``intermediate.dense``, ``output.dense``, ``output.LayerNorm``), so a dense BERT checkpoint maps onto
the dense layers one to one; MoE layers hold ``moe.router`` and ``moe.experts.{e}.fc1/fc2`` instead
of ``intermediate.dense``/``output.dense``. The MoE block itself lives in ``moe.py``.

A task-mode model (MoTE) takes ``task_ids`` (B,): the expert index of each sequence's task in
``config.tasks``; a topk model ignores them (the mode, `embedder.modes`, checks what its routing needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .config import MoeBertConfig
from .moe import MoEBlock


@dataclass
class MoeBertOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None  # (B, T, H)
    router_logits: tuple[torch.Tensor, ...] | None = None  # per learned (topk) MoE layer: (B*T, E)


class Embeddings(nn.Module):
    def __init__(self, cfg: MoeBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]  # (B, T, H)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))  # (B, T, H)


class SelfAttention(nn.Module):
    def __init__(self, cfg: MoeBertConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = (proj(x).view(B, T, self.heads, H // self.heads).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))  # (B, nh, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout_p if self.training else 0.0)  # (B, nh, T, hd)
        return y.transpose(1, 2).reshape(B, T, H)  # (B, T, H)


class DenseNorm(nn.Module):
    """Linear (optional) + dropout + residual + LayerNorm, as BERT's ``*.output`` modules."""

    def __init__(self, in_features: int | None, cfg: MoeBertConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size) if in_features else None
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, y: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            y = self.dense(y)
        return self.LayerNorm(self.dropout(y) + residual)  # (B, T, H)


class Attention(nn.Module):
    def __init__(self, cfg: MoeBertConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = DenseNorm(cfg.hidden_size, cfg)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, attn_mask), x)


class Intermediate(nn.Module):
    def __init__(self, cfg: MoeBertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # (B, T, I)


class Layer(nn.Module):
    def __init__(self, cfg: MoeBertConfig, moe: bool):
        super().__init__()
        self.attention = Attention(cfg)
        if moe:
            self.moe = MoEBlock(cfg.hidden_size, cfg.intermediate_size, cfg.moe_spec)
            self.output = DenseNorm(None, cfg)  # experts end in their own fc2
        else:
            self.intermediate = Intermediate(cfg)
            self.output = DenseNorm(cfg.intermediate_size, cfg)

    @property
    def is_moe(self) -> bool:
        return hasattr(self, "moe")

    def forward(self, x, attn_mask, token_mask, task_ids=None):
        x = self.attention(x, attn_mask)  # (B, T, H)
        if self.is_moe:
            y, router_logits = self.moe(x, token_mask, task_ids)  # (B, T, H), (B*T, E) or None (task mode)
            return self.output(y, x), router_logits
        return self.output(self.intermediate(x), x), None


class Encoder(nn.Module):
    def __init__(self, cfg: MoeBertConfig):
        super().__init__()
        moe_layers = set(cfg.moe_layers)
        self.layer = nn.ModuleList(Layer(cfg, i in moe_layers) for i in range(cfg.num_hidden_layers))


class MoeBertModel(PreTrainedModel):
    config_class = MoeBertConfig
    base_model_prefix = "moebert"
    _supports_sdpa = True
    main_input_name = "input_ids"

    def __init__(self, config: MoeBertConfig):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, MoEBlock):
            if module.router is not None:
                nn.init.normal_(module.router.weight, std=self.config.router_init_std)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def expert_blocks(self) -> list[MoEBlock]:
        """Every MoE block, learned or task."""
        return [layer.moe for layer in self.encoder.layer if layer.is_moe]

    def moe_blocks(self) -> list[MoEBlock]:
        """The learned-router (topk) blocks: those with router logits and a balancing loss."""
        return [b for b in self.expert_blocks() if b.mode.learned]

    def task_blocks(self) -> list[MoEBlock]:
        """The task-expert blocks (MoTE): expert e serves ``config.tasks[e]``."""
        return [b for b in self.expert_blocks() if b.mode.takes_tasks]

    def router_layers(self) -> list[int]:
        """Layer index of each learned MoE block, in the order of ``router_logits`` (and the ONNX outputs)."""
        return [i for i, layer in enumerate(self.encoder.layer) if layer.is_moe and layer.moe.mode.learned]

    def set_dispatch(self, dispatch: str) -> None:
        for block in self.expert_blocks():
            block.set_dispatch(dispatch)

    def set_dropout(self, p: float) -> None:
        """One dropout probability everywhere (hidden and attention), recorded in the config."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.config.hidden_dropout_prob = self.config.attention_probs_dropout_prob = p
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = p
            elif isinstance(m, SelfAttention):
                m.dropout_p = p

    def task_tensor(self, task: str | list[str], batch: int) -> torch.Tensor:
        """(B,) task ids for one task name (repeated) or one name per sequence."""
        names = [task] * batch if isinstance(task, str) else list(task)
        return torch.tensor(self.config.task_ids(names), dtype=torch.long, device=self.device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, task_ids: torch.Tensor | None = None,
                **_) -> MoeBertOutput:
        if self.config.moe_layers:
            self.config.moe_strategy.check_inputs(self.config, input_ids, task_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        token_mask = attention_mask.bool()  # (B, T)
        attn_mask = token_mask[:, None, None, :]  # (B, 1, 1, T): True = attend
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        router_logits = []
        for layer in self.encoder.layer:
            x, logits = layer(x, attn_mask, token_mask, task_ids)
            if logits is not None:
                router_logits.append(logits)
        return MoeBertOutput(last_hidden_state=x, router_logits=tuple(router_logits))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, dim: int | None = None,
              task_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Mean-pooled, L2-normalised embeddings (B, dim) and the router logits."""
        out = self(input_ids=input_ids, attention_mask=attention_mask, task_ids=task_ids)
        return truncate_normalize(mean_pool(out.last_hidden_state, attention_mask), dim), out.router_logits


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)  # (B, H)


def truncate_normalize(emb: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Matryoshka truncation to the first ``dim`` features, then L2 normalisation."""
    if dim is not None:
        emb = emb[..., :dim]
    return F.normalize(emb, p=2, dim=-1)  # (B, dim)


AutoModel.register(MoeBertConfig, MoeBertModel)
