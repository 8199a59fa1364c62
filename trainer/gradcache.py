"""One contrastive optimisation step with cached embeddings (GradCache, Gao et al. 2021).

Pass 1 embeds the whole batch chunk by chunk without a graph and counts router assignments. The loss is
computed on those embeddings (gathered over ranks) and differentiated with respect to them only. Pass 2
re-embeds each chunk with a graph, under the RNG state pass 1 used (same dropout masks), and back-propagates
``<embedding, cached gradient>`` plus the chunk's share of the load-balancing loss. Peak memory is one chunk's
activations, whatever the batch size, and the result equals the uncached step (value and gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import distributed
from .distributed import Dist
from .encode import TextEncoder
from .losses import balancing_partial, expert_counts

# loss_fn(q (Bg, H), d (Bg, H), negs (Mg, H) or None) -> (loss, {name: value}) on the GLOBAL batch
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, dict]]


SINGLE = Dist()


class RandState:
    """CPU (and CUDA) RNG state captured before a chunk, to replay the same dropout in pass 2."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


@dataclass
class StepResult:
    loss: float  # contrastive + coef * balancing, global batch
    contrastive: float
    balancing: float  # 0 for a model without MoE layers
    parts: dict  # loss_fn's extra values (per-dim losses)
    counts: torch.Tensor | None  # (L, E) global top-k assignments this step, for telemetry
    n_tokens: int


def _chunks(encoder: TextEncoder, texts: list[str], max_length: int, chunk_size: int, device):
    for s in range(0, len(texts), chunk_size):
        ids, mask = encoder.tokenize(texts[s: s + chunk_size], max_length)
        yield ids.to(device), mask.to(device)


def cached_step(encoder: TextEncoder, queries: list[str], docs: list[str], negs: list[str], loss_fn: LossFn, *,
                max_query_length: int, max_doc_length: int, chunk_size: int, aux_coef: float, top_k: int,
                d: Dist = SINGLE) -> StepResult:
    """Accumulate into ``.grad`` the gradient of this rank's part of the global loss; return the loss.

    queries[i] pairs with docs[i]; negs holds every query's hard negatives (any count, equal on every rank).
    Gradients are NOT yet summed over ranks (see ``distributed.sync_grads``).
    """
    device = d.device
    plan = []  # (kind, ids, mask, rng)
    for kind, texts, max_len in (("q", queries, max_query_length), ("d", docs, max_doc_length),
                                 ("n", negs, max_doc_length)):
        for ids, mask in _chunks(encoder, texts, max_len, chunk_size, device):
            plan.append((kind, ids, mask))
    # pass 1: embeddings and router assignment counts, no graph
    reps: dict[str, list[torch.Tensor]] = {"q": [], "d": [], "n": []}
    states, counts, n_tok = [], None, torch.zeros((), dtype=torch.float32)
    with torch.no_grad():
        for kind, ids, mask in plan:
            states.append(RandState())
            pooled, logits = encoder.forward(ids, mask)  # (b, H)
            reps[kind].append(pooled.float())
            if logits:
                c = expert_counts(logits, top_k, mask)  # (L, E)
                counts = c if counts is None else counts + c
                n_tok += mask.sum().float()
    local = {k: (torch.cat(v) if v else None) for k, v in reps.items()}
    for t in local.values():
        if t is not None:
            t.requires_grad_(True)
    q_all = distributed.gather(local["q"], d)  # (Bg, H)
    d_all = distributed.gather(local["d"], d)  # (Bg, H)
    n_all = distributed.gather(local["n"], d) if local["n"] is not None else None  # (Mg, H)
    loss, parts = loss_fn(q_all, d_all, n_all)
    loss.backward()
    grads = {k: (t.grad if t is not None else None) for k, t in local.items()}
    # load balancing over the global batch: counts and token totals from every rank
    use_aux = counts is not None and aux_coef > 0
    if counts is not None:
        counts = distributed.all_reduce_sum(counts, d)
        n_tok = distributed.all_reduce_sum(n_tok, d)
    # pass 2: re-embed with a graph under the same RNG, back-propagate the cached gradients
    offsets = {"q": 0, "d": 0, "n": 0}
    aux_local = torch.zeros(())
    for (kind, ids, mask), state in zip(plan, states, strict=True):
        state.restore()
        pooled, logits = encoder.forward(ids, mask)  # (b, H)
        b = pooled.shape[0]
        g = grads[kind][offsets[kind]: offsets[kind] + b]  # (b, H)
        offsets[kind] += b
        surrogate = (pooled.float() * g).sum()
        if logits and counts is not None:
            part = balancing_partial(logits, top_k, mask, counts, n_tok)
            aux_local = aux_local + part.detach()
            if use_aux:
                surrogate = surrogate + aux_coef * part
        surrogate.backward()
    balancing = float(distributed.all_reduce_sum(aux_local, d)) if counts is not None else 0.0
    contrastive = float(loss.detach())
    total = contrastive + (aux_coef * balancing if use_aux else 0.0)
    return StepResult(loss=total, contrastive=contrastive, balancing=balancing,
                      parts={k: float(v) for k, v in parts.items()}, counts=counts, n_tokens=int(n_tok))
