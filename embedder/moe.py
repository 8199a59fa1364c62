"""The Mixture-of-Experts FFN block: router, experts, sparse dispatch, load-balancing loss.

How a block picks its experts is its mode's (`embedder.modes`, ``MODES[spec.mode]``): ``topk`` routes each token
with a learned router (`route` below); ``task`` (MoTE) sends every token of a sequence to the expert of the
sequence's task (``task_ids``), weight 1, no router. All modes share the dispatch below: a task block is a top-1
block whose choice is given, not learned.

Routing (as in ORT's ``com.microsoft::MoE`` with ``normalize_routing_weights=1``): softmax over
all experts in fp32, take the top-k, renormalise the k weights to sum to 1. With every expert a
copy of the same FFN the block then equals that FFN exactly, which is what makes upcycling exact.

Dispatch is sparse: each expert runs only on the tokens routed to it (``where`` + ``index_select``
+ ``index_add``, which also exports to ONNX as real gather/scatter). ``dispatch="dense"`` runs every
expert on every token and masks; it exists only as the test reference and the benchmark baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MoESpec
from .modes import get_mode

DISPATCHES = ("sparse", "dense")


def expert_act(x: torch.Tensor, activation: str) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if activation == "gelu_tanh" else "none")


class Expert(nn.Module):
    """One FFN expert with the dense BERT FFN's shapes: H -> I -> H, with biases."""

    def __init__(self, hidden: int, intermediate: int, activation: str):
        super().__init__()
        self.fc1 = nn.Linear(hidden, intermediate)
        self.fc2 = nn.Linear(intermediate, hidden)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(expert_act(self.fc1(x), self.activation))  # (n, H)


def route(router_logits: torch.Tensor, top_k: int, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts (fp32), then top-k. Returns (weights (N, k) fp32, experts (N, k) int64), the order
    of its numpy twin `embedder.routing.top_k_routing`."""
    probs = router_logits.float().softmax(dim=-1)  # (N, E)
    weights, experts = probs.topk(top_k, dim=-1)  # (N, k), (N, k)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, experts


class MoEBlock(nn.Module):
    """Routed FFN. ``forward(hidden, token_mask, task_ids) -> (hidden, router_logits)``.

    hidden: (B, T, H) or (N, H). token_mask (same leading dims, bool): tokens outside it are not
    sent to any expert and come out as zeros (padding; attention masks them anyway).
    task_ids: (B,) int expert index per sequence; required in task mode (hidden then (B, T, H)), unused in topk.
    router_logits: (N, E) for the flattened tokens, for the load-balancing loss and telemetry; None unless the
    mode is learned (``mode.learned``: a router, as topk; task mode has none).
    """

    def __init__(self, hidden: int, intermediate: int, spec: MoESpec):
        super().__init__()
        self.mode = get_mode(spec.mode)  # the strategy: routing inputs, export stand-in, trainer groups
        self.tasks = spec.tasks
        self.num_experts = spec.num_experts
        self.top_k = spec.num_experts_per_tok
        self.normalize = spec.norm_topk_prob
        self.activation = spec.expert_activation
        self.router = nn.Linear(hidden, spec.num_experts, bias=False) if self.mode.learned else None
        self.experts = nn.ModuleList(Expert(hidden, intermediate, spec.expert_activation)
                                     for _ in range(spec.num_experts))
        self.dispatch = "sparse"

    def set_dispatch(self, dispatch: str) -> None:
        if dispatch not in DISPATCHES:
            raise ValueError(f"dispatch must be one of {DISPATCHES}, got {dispatch!r}")
        self.dispatch = dispatch

    def forward(self, hidden: torch.Tensor, token_mask: torch.Tensor | None = None,
                task_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])  # (N, H)
        weights, experts, router_logits = self.mode.route(self, x, task_ids, shape)  # (N, k), (N, k), (N, E)|None
        mask = None if token_mask is None else token_mask.reshape(-1, 1).bool()  # (N, 1)
        if self.dispatch == "dense":
            out = self._dense(x, weights, experts, mask)
        else:
            out = self._sparse(x, weights, experts, mask)
        return out.reshape(shape), router_logits

    def _sparse(self, x, weights, experts, mask):
        out = torch.zeros_like(x)  # (N, H)
        for e, expert in enumerate(self.experts):
            hit = experts == e  # (N, k)
            if mask is not None:
                hit = hit & mask
            tok, slot = torch.where(hit)  # (n_e,), (n_e,)
            if not torch.compiler.is_exporting() and tok.numel() == 0:
                continue  # an expert with no tokens costs nothing (eager only: export keeps a static graph)
            y = expert(x.index_select(0, tok))  # (n_e, H)
            w = weights[tok, slot].unsqueeze(-1).to(y.dtype)  # (n_e, 1)
            out = out.index_add(0, tok, (y * w).to(out.dtype))
        return out

    def _dense(self, x, weights, experts, mask):
        # Combine weight of every expert for every token, zero where not routed: (N, E)
        gate = torch.zeros(x.shape[0], self.num_experts, dtype=weights.dtype, device=x.device)
        gate = gate.scatter(1, experts, weights)  # (N, E)
        if mask is not None:
            gate = gate * mask.to(gate.dtype)
        ys = torch.stack([expert(x) for expert in self.experts], dim=1)  # (N, E, H)
        return (ys * gate.unsqueeze(-1).to(ys.dtype)).sum(dim=1)  # (N, H)


def _flat_mask(router_logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones(router_logits.shape[0], dtype=torch.float32, device=router_logits.device)
    return mask.reshape(-1).float()  # (N,)


def _layers(router_logits: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(router_logits) if isinstance(router_logits, (tuple, list)) else (router_logits,)


@torch.no_grad()
def expert_counts(router_logits: torch.Tensor | tuple[torch.Tensor, ...], top_k: int,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k assignments per expert, (L, E), over the (masked) tokens of each MoE layer (routing as `route`)."""
    rows = []
    for logits in _layers(router_logits):
        m = _flat_mask(logits, mask)  # (N,)
        _, experts = route(logits, top_k, normalize=False)  # (N, k)
        assigned = F.one_hot(experts, logits.shape[-1]).sum(dim=1).float()  # (N, E)
        rows.append((assigned * m[:, None]).sum(0))  # (E,)
    return torch.stack(rows)  # (L, E)


def balancing_partial(router_logits: torch.Tensor | tuple[torch.Tensor, ...], top_k: int,
                      mask: torch.Tensor | None, counts: torch.Tensor, n_tokens: float | torch.Tensor
                      ) -> torch.Tensor:
    """These tokens' share of a batch's Switch loss ``mean_layers E * sum_e f_e * P_e``.

    counts (L, E): the batch-wide top-k assignments (`expert_counts`, summed over chunks and ranks); n_tokens: the
    batch-wide count of (masked) tokens. Summed over the chunks of a batch this equals the full-batch loss, value
    and gradient, because P_e = (1/n_tokens) * sum over tokens of p_te (what GradCache and DDP rely on).
    """
    layers = _layers(router_logits)
    n = torch.as_tensor(n_tokens, dtype=torch.float32).clamp_min(1.0)
    total = 0.0
    for layer, logits in enumerate(layers):
        m = _flat_mask(logits, mask)  # (N,)
        probs = logits.float().softmax(dim=-1)  # (N, E)
        f = counts[layer].to(probs.device) / (n * top_k)  # (E,)
        p_sum = (probs * m[:, None]).sum(0)  # (E,)
        total = total + logits.shape[-1] * (f * p_sum).sum() / n
    return total / max(len(layers), 1)


def load_balancing_loss(router_logits: torch.Tensor | tuple[torch.Tensor, ...], top_k: int,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Switch-Transformer auxiliary loss ``E * sum_e f_e * P_e``, averaged over layers.

    f_e: fraction of the (masked) token->expert assignments that go to expert e (top-k, so each
    token contributes k assignments); P_e: mean router probability of expert e. Equals 1 when
    routing is perfectly uniform, and grows to E when everything goes to one expert.
    """
    layers = _layers(router_logits)
    return balancing_partial(layers, top_k, mask, expert_counts(layers, top_k, mask),
                             _flat_mask(layers[0], mask).sum())


@torch.no_grad()
def expert_load(router_logits: torch.Tensor, top_k: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of token->expert assignments per expert, (E,), summing to 1 (telemetry)."""
    counts = expert_counts(router_logits, top_k, mask)[0]  # (E,)
    return counts / counts.sum().clamp_min(1.0)
