"""Contrastive losses, as pure functions of embeddings.

* `info_nce`: InfoNCE over in-batch negatives (every other query's positive) plus any extra candidates (hard
  negatives of every query), optionally symmetric (documents also retrieve their queries).
* `matryoshka_info_nce`: the same at each Matryoshka truncation, weighted (Kusupati et al. 2022).

The Switch load-balancing loss has one definition, next to the routing it measures (`embedder.moe`): the full-batch
`load_balancing_loss`, and the split form that GradCache chunks and DDP ranks add up (`expert_counts` +
`balancing_partial`: the assignment fractions f_e are counted over the whole batch first, no gradient, and the
probability term P_e is a sum over tokens, so each chunk contributes its own tokens' share).
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

