"""The MoE block against naive references: all-experts-then-mask, a per-token loop, a hand-computed loss."""

import torch
import torch.nn.functional as F

from embedder.config import MoESpec
from embedder.moe import MoEBlock, expert_load, load_balancing_loss, route


def make_block(E=4, k=2, H=32, inter=64, seed=0, activation="gelu"):
    torch.manual_seed(seed)
    spec = MoESpec(num_layers=2, num_experts=E, num_experts_per_tok=k, expert_activation=activation)
    block = MoEBlock(H, inter, spec)
    torch.nn.init.normal_(block.router.weight, std=1.0)
    return block


def per_token_reference(block, x):
    """Loop over tokens: softmax, top-k, renormalise, weighted sum of the chosen experts."""
    out = torch.zeros_like(x)
    for n in range(x.shape[0]):
        probs = F.softmax(block.router(x[n]).float(), -1)
        w, idx = probs.topk(block.top_k)
        w = w / w.sum()
        for j in range(block.top_k):
            out[n] += w[j] * block.experts[int(idx[j])](x[n][None])[0]
    return out


def test_sparse_equals_dense_reference_and_token_loop():
    block = make_block()
    x = torch.randn(2, 7, 32)
    sparse, logits = block(x)
    block.set_dispatch("dense")
    dense, _ = block(x)
    assert logits.shape == (14, 4)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sparse.reshape(-1, 32), per_token_reference(block, x.reshape(-1, 32)),
                               atol=1e-5, rtol=1e-5)


def test_sparse_gradients_equal_dense_reference():
    x = torch.randn(10, 32)
    grads = []
    for dispatch in ("sparse", "dense"):
        block = make_block(seed=3)
        block.set_dispatch(dispatch)
        y, logits = block(x)
        (y.square().sum() + load_balancing_loss(logits, 2)).backward()
        grads.append({n: p.grad.clone() for n, p in block.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_masked_tokens_get_no_expert_and_zero_output():
    block = make_block()
    x = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y, _ = block(x, mask)
    assert torch.all(y[0, 3:] == 0)
    full, _ = block(x)
    torch.testing.assert_close(y[mask], full[mask])


def test_experts_only_see_routed_tokens():
    """The eager path is really sparse: each expert's fc1 sees only its tokens, N*k rows in all."""
    block = make_block(E=8, k=2)
    seen = []
    for expert in block.experts:
        expert.fc1.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    x = torch.randn(40, 32)
    _, logits = block(x)
    assert sum(seen) == 40 * 2
    counts = torch.bincount(logits.topk(2, -1).indices.reshape(-1), minlength=8)
    assert seen == counts.tolist()


def test_empty_experts_and_single_token():
    block = make_block(E=8, k=2)
    y, logits = block(torch.randn(1, 1, 32))
    assert y.shape == (1, 1, 32) and torch.isfinite(y).all()


def test_upcycled_identical_experts_equal_dense_ffn():
    block = make_block()
    with torch.no_grad():
        for e in block.experts[1:]:
            e.load_state_dict(block.experts[0].state_dict())
    x = torch.randn(9, 32)
    y, _ = block(x)
    torch.testing.assert_close(y, block.experts[0](x), atol=1e-6, rtol=1e-5)


def test_route_renormalises_top_k():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    w, idx = route(logits, 2)
    p = logits.softmax(-1)[0]
    assert idx.tolist() == [[0, 1]]
    torch.testing.assert_close(w, (p[:2] / p[:2].sum())[None])
    w_raw, _ = route(logits, 2, normalize=False)
    torch.testing.assert_close(w_raw, p[:2][None])


def test_load_balancing_loss_matches_hand_computation():
    torch.manual_seed(0)
    E, k = 4, 2
    logits = torch.randn(12, E)
    mask = torch.ones(12, dtype=torch.bool)
    mask[-3:] = False
    # by hand, over the 9 unmasked tokens
    f = [0.0] * E
    p = [0.0] * E
    for n in range(9):
        probs = logits[n].softmax(-1)
        for e in probs.topk(k).indices.tolist():
            f[e] += 1 / (9 * k)
        for e in range(E):
            p[e] += probs[e].item() / 9
    expected = E * sum(fe * pe for fe, pe in zip(f, p, strict=True))
    got = load_balancing_loss(logits, k, mask)
    assert abs(got.item() - expected) < 1e-5
    # averaged over layers
    both = load_balancing_loss((logits, logits), k, mask)
    assert abs(both.item() - expected) < 1e-5
    # uniform routing gives exactly 1
    assert abs(load_balancing_loss(torch.zeros(8, E), 1).item() - 1.0) < 1e-6


def test_expert_load_sums_to_one_and_ignores_mask():
    logits = torch.tensor([[5.0, 0, 0, 0], [5.0, 0, 0, 0], [0, 0, 0, 5.0]])
    load = expert_load(logits, 1, torch.tensor([1, 1, 0]))
    assert load.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert abs(expert_load(torch.randn(50, 4), 2).sum().item() - 1) < 1e-6
