"""Losses, as pure functions of embeddings (and router logits).

* `info_nce`: InfoNCE over in-batch negatives (every other query's positive) plus any extra candidates (hard
  negatives of every query), optionally symmetric (documents also retrieve their queries).
* `matryoshka_info_nce`: the same at each Matryoshka truncation, weighted (Kusupati et al. 2022).
* `balancing_partial` / `expert_counts`: the Switch load-balancing loss split so that a batch embedded in
  chunks (GradCache) or across ranks gets exactly the full-batch loss and gradient: the assignment fractions
  f_e are counted over the whole batch first (no gradient), and the probability term P_e is a sum over tokens,
  so each chunk contributes its own tokens' share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(q: torch.Tensor, d: torch.Tensor, temperature: float, *, extra: torch.Tensor | None = None,
             symmetric: bool = False) -> torch.Tensor:
    """q (B, D) and d (B, D) L2-normalised, row i of d the positive of query i; extra (M, D) more candidates.

    Returns the mean cross-entropy of picking the positive among the B + M candidates; with ``symmetric`` the
    mean of that and of each document picking its query among the B queries.
    """
    cands = d if extra is None or extra.numel() == 0 else torch.cat([d, extra])  # (B + M, D)
    logits = q @ cands.T / temperature  # (B, B + M)
    labels = torch.arange(q.shape[0], device=q.device)  # (B,)
    loss = F.cross_entropy(logits.float(), labels)
    if symmetric:
        back = d @ q.T / temperature  # (B, B)
        loss = (loss + F.cross_entropy(back.float(), labels)) / 2
    return loss


def matryoshka_info_nce(q: torch.Tensor, d: torch.Tensor, dims: tuple[int, ...], temperature: float, *,
                        weights: tuple[float, ...] = (), extra: torch.Tensor | None = None,
                        symmetric: bool = False) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """q (B, H), d (B, H), extra (M, H) pooled, NOT normalised: each dim truncates, normalises, scores.

    Returns (weighted mean over dims, {dim: loss}); the full-size loss is the first dim's.
    """
    if not dims:
        raise ValueError("dims must name at least one Matryoshka dimension")
    if max(dims) > q.shape[-1]:
        raise ValueError(f"Matryoshka dim {max(dims)} exceeds the embedding size {q.shape[-1]}")
    w = torch.tensor(weights if weights else [1.0] * len(dims), dtype=torch.float32, device=q.device)
    if w.sum() <= 0:
        raise ValueError("matryoshka weights must not all be zero")
    per_dim = {}
    for dim in dims:
        qn = F.normalize(q[:, :dim], dim=-1)  # (B, dim)
        dn = F.normalize(d[:, :dim], dim=-1)  # (B, dim)
        en = None if extra is None else F.normalize(extra[:, :dim], dim=-1)  # (M, dim)
        per_dim[dim] = info_nce(qn, dn, temperature, extra=en, symmetric=symmetric)
    total = (torch.stack(list(per_dim.values())) * w).sum() / w.sum()
    return total, per_dim


def _mask(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(logits.shape[0], dtype=torch.float32, device=logits.device)  # (N,)
    return mask.reshape(-1).float()  # (N,)


@torch.no_grad()
def expert_counts(router_logits: tuple[torch.Tensor, ...], top_k: int, mask: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Top-k assignments per expert, (L, E), over the (masked) tokens of each MoE layer."""
    rows = []
    for logits in router_logits:
        m = _mask(logits, mask)  # (N,)
        _, experts = logits.float().softmax(-1).topk(top_k, dim=-1)  # (N, k)
        assigned = F.one_hot(experts, logits.shape[-1]).sum(1).float()  # (N, E)
        rows.append((assigned * m[:, None]).sum(0))  # (E,)
    return torch.stack(rows)  # (L, E)


def balancing_partial(router_logits: tuple[torch.Tensor, ...], top_k: int, mask: torch.Tensor | None,
                      counts: torch.Tensor, n_tokens: float | torch.Tensor) -> torch.Tensor:
    """This chunk's share of the batch's Switch loss ``mean_layers E * sum_e f_e * P_e``.

    counts (L, E): batch-wide top-k assignments (`expert_counts` summed over chunks and ranks); n_tokens: the
    batch-wide count of (masked) tokens. Summed over all chunks this equals the full-batch loss, value and
    gradient, because P_e = (1/n_tokens) * sum over tokens of p_te.
    """
    n = torch.as_tensor(n_tokens, dtype=torch.float32).clamp_min(1.0)
    total = 0.0
    for layer, logits in enumerate(router_logits):
        m = _mask(logits, mask)  # (N,)
        probs = logits.float().softmax(-1)  # (N, E)
        f = counts[layer].to(probs.device) / (n * top_k)  # (E,)
        p_sum = (probs * m[:, None]).sum(0)  # (E,)
        total = total + logits.shape[-1] * (f * p_sum).sum() / n
    return total / max(len(router_logits), 1)


def balancing_loss(router_logits: tuple[torch.Tensor, ...], top_k: int, mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Full-batch Switch load-balancing loss (equals ``embedder.moe.load_balancing_loss``)."""
    counts = expert_counts(router_logits, top_k, mask)
    n = _mask(router_logits[0], mask).sum()
    return balancing_partial(router_logits, top_k, mask, counts, n)
