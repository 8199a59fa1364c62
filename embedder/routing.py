"""Top-k routing in numpy, for everything torch-free: the runtime's routing panel and the ONNX checks.

The same math as `embedder.moe.route` (torch, what the model computes): softmax over all experts in fp32,
take the top-k (ties to the lower expert id), renormalise the k weights to sum to 1. Both return
``(weights, experts)``, in that order.
"""

from __future__ import annotations

import numpy as np


def top_k_routing(logits: np.ndarray, k: int, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(weights (..., k) float32, experts (..., k) int) for router logits (..., E), as `embedder.moe.route`."""
    z = np.exp(logits.astype(np.float32) - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)  # (..., E)
    experts = np.argsort(-probs, axis=-1, kind="stable")[..., :k]  # (..., k)
    weights = np.take_along_axis(probs, experts, -1)  # (..., k)
    if normalize:
        weights = weights / weights.sum(-1, keepdims=True)
    return weights, experts
