"""Losses against naive references and hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from embedder.moe import balancing_partial, expert_counts, load_balancing_loss
from trainer.losses import info_nce, matryoshka_info_nce


def naive_info_nce(q, d, tau, extra=None, symmetric=False):
    cands = list(d) + ([] if extra is None else list(extra))
    total = 0.0
    for i in range(len(q)):
        scores = [float(q[i] @ c) / tau for c in cands]
        total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    loss = total / len(q)
    if symmetric:
        back = 0.0
        for i in range(len(d)):
            scores = [float(d[i] @ qq) / tau for qq in q]
            back += -scores[i] + math.log(sum(math.exp(s) for s in scores))
        loss = (loss + back / len(d)) / 2
    return loss


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("with_extra", [False, True])
def test_info_nce_matches_naive_loop(symmetric, with_extra):
    q, d = unit(6, 8, seed=1), unit(6, 8, seed=2)
    extra = unit(5, 8, seed=3) if with_extra else None
    got = info_nce(q, d, 0.05, extra=extra, symmetric=symmetric)
    assert got.item() == pytest.approx(naive_info_nce(q, d, 0.05, extra, symmetric), rel=1e-6)


def test_info_nce_prefers_aligned_pairs():
    q = unit(4, 16, seed=4)
    assert info_nce(q, q, 0.02) < info_nce(q, unit(4, 16, seed=5), 0.02)


def test_matryoshka_truncates_normalises_and_weights():
    g = torch.Generator().manual_seed(0)
    q, d, n = (torch.randn(5, 12, generator=g, dtype=torch.float64) for _ in range(3))
    total, per = matryoshka_info_nce(q, d, (12, 6, 3), 0.1, weights=(1.0, 2.0, 1.0), extra=n)
    for dim in (12, 6, 3):
        ref = naive_info_nce(F.normalize(q[:, :dim], dim=-1), F.normalize(d[:, :dim], dim=-1), 0.1,
                             F.normalize(n[:, :dim], dim=-1))
        assert per[dim].item() == pytest.approx(ref, rel=1e-6)
    assert total.item() == pytest.approx((per[12] + 2 * per[6] + per[3]).item() / 4, rel=1e-9)
    with pytest.raises(ValueError, match="exceeds"):
        matryoshka_info_nce(q, d, (24,), 0.1)


def test_balancing_loss_hand_computation():
    # 4 tokens, 3 experts, top-1; last token is padding.
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]]))
    mask = torch.tensor([1, 1, 1, 0])
    # f = (2/3, 0, 1/3); P = mean of the 3 real rows = (1.4/3, 0.6/3, 1.0/3)
    hand = 3 * (2 / 3 * 1.4 / 3 + 0 + 1 / 3 * 1.0 / 3)
    assert load_balancing_loss((logits,), 1, mask).item() == pytest.approx(hand, rel=1e-6)


def test_balancing_split_over_chunks_equals_full_batch():
    g = torch.Generator().manual_seed(0)
    layers = tuple(torch.randn(20, 4, generator=g, requires_grad=True) for _ in range(2))
    mask = (torch.rand(20, generator=g) > 0.2).long()
    full = load_balancing_loss(layers, 2, mask)
    grads_full = torch.autograd.grad(full, layers)
    counts = expert_counts(layers, 2, mask)
    n = mask.sum()
    parts = [balancing_partial(tuple(x[s:s + 7] for x in layers), 2, mask[s:s + 7], counts, n) for s in (0, 7, 14)]
    total = sum(parts)
    assert total.item() == pytest.approx(full.item(), rel=1e-6)
    for a, b in zip(torch.autograd.grad(total, layers), grads_full, strict=True):
        torch.testing.assert_close(a, b)
