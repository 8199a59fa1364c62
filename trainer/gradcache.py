"""One contrastive optimisation step with cached embeddings (GradCache, Gao et al. 2021).

The texts of a step (queries, positives, hard negatives) are tokenized once and packed into chunks
(`plan_chunks`). ``packing="sorted"`` (the default) sorts all texts of the step by token length and cuts
that order where padded tokens plus a per-chunk overhead are smallest (the largest chunk goes last), each
chunk holding at most ``chunk_size * max_length`` padded tokens: a chunk pads only to its own longest text,
short texts share a chunk in larger numbers, and the memory bound stays the one of ``chunk_size`` texts of the
longest allowed length. ``packing="sequential"`` is the earlier layout (each side in its input order,
``chunk_size`` texts a chunk, padded to the chunk's longest text).

Pass 1 embeds every chunk but the last without a graph and counts router assignments; the last chunk runs
with its graph (``cache="auto"``; with ``"always"`` it is cached like the others). The loss is computed on
those embeddings (gathered over ranks) and back-propagated into the cached embeddings and, through its graph,
the last chunk's weights; pass 2 re-embeds each cached chunk with a graph, under the RNG state pass 1 used
(same dropout masks), and back-propagates ``<embedding, cached gradient>`` plus the chunk's share of the
load-balancing loss. A step that fits in one chunk thus runs without GradCache (one forward). Peak memory is
one chunk's activations, whatever the batch size, and every path gives the same loss and gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from embedder.moe import balancing_partial, expert_counts

from . import distributed
from .config import GRADCACHE, PACKINGS
from .distributed import Dist
from .encode import TextEncoder

# loss_fn(q (Bg, H), d (Bg, H), negs (Mg, H) or None) -> (loss, {name: value}) on the GLOBAL batch
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, dict]]

KINDS = ("q", "d", "n")
SINGLE = Dist()
# What one more chunk costs (its forward + forward/backward calls), in padded tokens: ~0.17 CPU-s against ~1.3
# CPU-ms a token for MiniLM-sized MoE models in bf16 on one core; only used to choose where sorted chunks are cut.
CHUNK_OVERHEAD_TOKENS = 128


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
    balancing: float  # 0 for a model without learned MoE layers
    parts: dict  # loss_fn's extra values (per-dim losses)
    counts: torch.Tensor | None  # (L, E) global top-k assignments this step, for telemetry
    n_tokens: int
    chunks: int = 0  # forward chunks this rank ran per pass
    padded_tokens: int = 0  # tokens those chunks held, padding included (this rank)
    cached: bool = True  # False: the step fitted in one chunk and ran without GradCache's second pass


@dataclass
class Chunk:
    ids: torch.Tensor  # (b, T)
    mask: torch.Tensor  # (b, T)
    task_ids: torch.Tensor | None  # (b,) task expert per row (task models), else None
    parts: list[tuple[str, torch.Tensor, torch.Tensor]]  # (kind, rows in this chunk (m,), positions in the side (m,))


def _partition(lengths: np.ndarray, budget: int, overhead: int) -> list[int]:
    """Cut texts sorted longest first into consecutive chunks that minimise padded tokens + ``overhead`` per
    chunk, each chunk holding at most ``budget`` padded tokens (rows x its first, longest, row).
    Exact dynamic programme over the cut points; returns the cuts [0, ..., N]."""
    n = len(lengths)
    cost = np.zeros(n + 1)  # cost[i]: best cost of the first i texts
    back = np.zeros(n + 1, dtype=np.int64)
    lo = 0
    for i in range(1, n + 1):
        while (i - lo) * lengths[lo] > budget:  # a chunk [j, i) fits iff (i - j) * lengths[j] <= budget
            lo += 1
        js = np.arange(lo, i)
        vals = cost[lo:i] + (i - js) * lengths[lo:i] + overhead
        k = int(np.argmin(vals))
        cost[i], back[i] = vals[k], lo + k
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(int(back[cuts[-1]]))
    return cuts[::-1]


def plan_chunks(encoder: TextEncoder, sides: dict[str, tuple[list[str], int]], chunk_size: int, *,
                packing: str = "sorted", tasks: dict[str, int] | None = None, device=None) -> list[Chunk]:
    """Pack the texts of ``sides`` ({kind: (texts, max_length)}) into forward chunks (see the module doc)."""
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    items = []  # (kind, index, token ids)
    for kind in KINDS:
        if kind in sides:
            texts, max_len = sides[kind]
            items.extend((kind, i, row) for i, row in enumerate(encoder.token_rows(texts, max_len)))
    groups: list[list[tuple[str, int, list[int]]]] = []
    if packing == "sequential":
        for kind in KINDS:
            rows = [it for it in items if it[0] == kind]
            groups.extend(rows[s: s + chunk_size] for s in range(0, len(rows), chunk_size))
    else:
        budget = chunk_size * max(max_len for _, max_len in sides.values())
        order = sorted(range(len(items)), key=lambda j: -len(items[j][2]))  # stable: ties keep input order
        lengths = np.array([len(items[j][2]) for j in order], dtype=np.int64)  # (N,) longest first
        bounds = _partition(lengths, budget, CHUNK_OVERHEAD_TOKENS)
        groups = [[items[order[j]] for j in range(a, b)] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        big = max(range(len(groups)), key=lambda k: len(groups[k]) * len(groups[k][0][2]))
        groups.append(groups.pop(big))  # the largest chunk last: cached_step keeps its pass-1 graph
    chunks = []
    for g in groups:
        ids, mask = encoder.pad([row for _, _, row in g])
        kinds = [k for k, _, _ in g]
        parts = []
        for kind in KINDS:
            rows = [r for r, k in enumerate(kinds) if k == kind]
            if rows:
                parts.append((kind, torch.tensor(rows, dtype=torch.long, device=device),
                              torch.tensor([g[r][1] for r in rows], dtype=torch.long, device=device)))
        task_ids = None if tasks is None else torch.tensor([tasks[k] for k in kinds], dtype=torch.long, device=device)
        chunks.append(Chunk(ids.to(device), mask.to(device), task_ids, parts))
    return chunks


def _scatter(chunks: list[Chunk], pooled: list[torch.Tensor], sizes: dict[str, int]) -> dict[str, torch.Tensor | None]:
    """Per-side (n, H) tensors in input order from the chunks' rows (differentiable in ``pooled``)."""
    out: dict[str, torch.Tensor | None] = {k: None for k in KINDS}
    for c, p in zip(chunks, pooled, strict=True):
        for kind, rows, index in c.parts:
            if out[kind] is None:
                out[kind] = p.new_zeros(sizes[kind], p.shape[-1])  # (n, H)
            out[kind] = out[kind].index_copy(0, index, p.index_select(0, rows))
    return out


def cached_step(encoder: TextEncoder, queries: list[str], docs: list[str], negs: list[str], loss_fn: LossFn, *,
                max_query_length: int, max_doc_length: int, chunk_size: int, aux_coef: float, top_k: int,
                d: Dist = SINGLE, tasks: dict[str, int] | None = None, packing: str = "sorted",
                cache: str = "auto") -> StepResult:
    """Accumulate into ``.grad`` the gradient of this rank's part of the global loss; return the loss.

    queries[i] pairs with docs[i]; negs holds every query's hard negatives (any count, equal on every rank).
    tasks: {"q": id, "d": id, "n": id}, the task expert of each side (task models); None for other models.
    cache: "auto" (the last chunk keeps its pass-1 graph: no GradCache at all for a one-chunk step) or "always".
    Gradients are NOT yet summed over ranks (see ``distributed.sync_grads``).
    """
    if cache not in GRADCACHE:
        raise ValueError(f"cache must be one of {GRADCACHE}, got {cache!r}")
    sides = {"q": (queries, max_query_length), "d": (docs, max_doc_length)}
    if negs:
        sides["n"] = (negs, max_doc_length)
    sizes = {k: len(v[0]) for k, v in sides.items()}
    chunks = plan_chunks(encoder, sides, chunk_size, packing=packing, tasks=tasks, device=d.device)
    padded = sum(c.ids.numel() for c in chunks)
    keep = len(chunks) - 1 if cache == "auto" else None  # this chunk keeps its pass-1 graph: no second forward
    # pass 1: embeddings and router assignment counts; no graph except for the kept (last) chunk
    pooled, logits_of, states = [], [], []
    counts, n_tok = None, torch.zeros((), dtype=torch.float32)
    with encoder.autocast(), torch.no_grad():  # one autocast context: each weight is cast to bf16 once a pass
        for c in chunks[:keep]:
            states.append(RandState())
            p, logits = encoder.forward(c.ids, c.mask, c.task_ids)  # (b, H)
            pooled.append(p.float().requires_grad_(True))  # a leaf: its .grad is the cached gradient
            logits_of.append(logits)
    if keep is not None:  # outside pass 1's autocast context: its cached bf16 weights have no graph
        p, logits = encoder.forward(chunks[keep].ids, chunks[keep].mask, chunks[keep].task_ids)  # (b, H)
        pooled.append(p.float())
        logits_of.append(logits)
    for c, logits in zip(chunks, logits_of, strict=True):
        if logits:
            cnt = expert_counts(logits, top_k, c.mask)  # (L, E)
            counts = cnt if counts is None else counts + cnt
            n_tok += c.mask.sum().float()
    local = _scatter(chunks, pooled, sizes)
    q_all = distributed.gather(local["q"], d)  # (Bg, H)
    d_all = distributed.gather(local["d"], d)  # (Bg, H)
    n_all = distributed.gather(local["n"], d) if local["n"] is not None else None  # (Mg, H)
    loss, parts = loss_fn(q_all, d_all, n_all)
    # load balancing over the global batch: counts and token totals from every rank
    use_aux = counts is not None and aux_coef > 0
    if counts is not None:
        counts = distributed.all_reduce_sum(counts, d)
        n_tok = distributed.all_reduce_sum(n_tok, d)
    aux_local = torch.zeros(())

    def with_aux(surrogate, chunk: Chunk, logits):
        nonlocal aux_local
        if logits and counts is not None:
            part = balancing_partial(logits, top_k, chunk.mask, counts, n_tok)
            aux_local = aux_local + part.detach()
            if use_aux:
                surrogate = surrogate + aux_coef * part
        return surrogate

    # the loss's gradient: into the cached chunks' leaves and, through its graph, the kept chunk's parameters
    (with_aux(loss, chunks[keep], logits_of[keep]) if keep is not None else loss).backward()
    # pass 2: re-embed the cached chunks with a graph under the same RNG, back-propagate their cached gradients
    with encoder.autocast():
        for c, state, leaf in zip(chunks[:keep], states, pooled[: len(states)], strict=True):
            state.restore()
            p, logits = encoder.forward(c.ids, c.mask, c.task_ids)  # (b, H)
            with_aux((p.float() * leaf.grad).sum(), c, logits).backward()
    balancing = float(distributed.all_reduce_sum(aux_local, d)) if counts is not None else 0.0
    contrastive = float(loss.detach())
    total = contrastive + (aux_coef * balancing if use_aux else 0.0)
    return StepResult(loss=total, contrastive=contrastive, balancing=balancing,
                      parts={k: float(v) for k, v in parts.items()}, counts=counts, n_tokens=int(n_tok),
                      chunks=len(chunks), padded_tokens=padded, cached=keep != 0)
