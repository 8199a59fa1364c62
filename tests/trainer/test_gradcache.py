"""GradCache: every packing and caching path gives the uncached step's loss and gradients."""

import pytest
import torch
from trainer_helpers import synthetic_pairs

from embedder.moe import load_balancing_loss
from trainer.config import StageConfig
from trainer.encode import TextEncoder
from trainer.gradcache import cached_step, plan_chunks
from trainer.loop import make_loss, set_dropout


def batch(n=8, k=2):
    pairs = synthetic_pairs(n, seed=3, negs=k)
    return [p.query for p in pairs], [p.pos for p in pairs], [x for p in pairs for x in p.negs]


def uncached(enc, queries, docs, negs, loss_fn, aux_coef, top_k):
    """The naive reference: each side in one padded forward with a graph, one backward."""
    outs = [enc.forward(*enc.tokenize(texts, max_len)) + (enc.tokenize(texts, max_len)[1],)
            for texts, max_len in ((queries, 16), (docs, 24), (negs, 24))]
    loss, _ = loss_fn(outs[0][0], outs[1][0], outs[2][0])
    layers = tuple(torch.cat([o[1][i] for o in outs]) for i in range(len(outs[0][1])))
    mask = torch.cat([o[2].reshape(-1) for o in outs])
    aux = load_balancing_loss(layers, top_k, mask)
    (loss + aux_coef * aux).backward()
    return loss.item(), aux.item()


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def run(moe_dir, mode, dropout, **kw):
    cfg = StageConfig(temperature=0.05, symmetric=True, matryoshka_dims=(32, 16), batch_size=8)
    loss_fn = make_loss(cfg, (32, 16))
    q, d, n = batch()
    enc = TextEncoder.load(moe_dir)
    set_dropout(enc.model, dropout)
    enc.model.train()
    torch.manual_seed(0)
    if mode == "uncached":
        loss, aux = uncached(enc, q, d, n, loss_fn, 0.5, 2)
        return loss, aux, grads(enc.model), None
    res = cached_step(enc, q, d, n, loss_fn, max_query_length=16, max_doc_length=24, aux_coef=0.5, top_k=2, **kw)
    assert res.loss == pytest.approx(res.contrastive + 0.5 * res.balancing, rel=1e-6)
    return res.contrastive, res.balancing, grads(enc.model), res


def assert_same(a, b):
    (l0, a0, g0, _), (l1, a1, g1, _) = a, b
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert a1 == pytest.approx(a0, rel=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("packing,chunk,cache", [("sorted", 3, "auto"), ("sorted", 64, "auto"),
                                                 ("sorted", 64, "always"), ("sequential", 3, "always")])
def test_cached_step_equals_uncached(moe_dir, packing, chunk, cache):
    ref = run(moe_dir, "uncached", 0.0)
    out = run(moe_dir, "cached", 0.0, chunk_size=chunk, packing=packing, cache=cache)
    assert_same(ref, out)
    assert out[3].cached == (cache == "always" or chunk == 3)
    assert ref[1] > 1.0  # routing is not perfectly uniform, so the balancing term is live
    router = [k for k in ref[2] if "router" in k]
    assert router and any(ref[2][k].abs().sum() > 0 for k in router)


def test_dropout_is_replayed_in_pass_two(moe_dir):
    """Sequential chunks draw dropout in the reference's order: the cached step is the uncached one exactly."""
    ref = run(moe_dir, "uncached", 0.1)
    assert_same(ref, run(moe_dir, "cached", 0.1, chunk_size=64, packing="sequential", cache="always"))


@pytest.mark.parametrize("chunk", [64, 3])
def test_kept_chunk_equals_two_pass_step_with_dropout(moe_dir, chunk):
    """cache="auto" keeps the last chunk's pass-1 graph (with one chunk: no GradCache at all); it draws the
    same dropout as the two-pass step and gives its loss and gradients."""
    auto = run(moe_dir, "cached", 0.1, chunk_size=chunk, cache="auto")
    two_pass = run(moe_dir, "cached", 0.1, chunk_size=chunk, cache="always")
    assert auto[3].cached == (chunk == 3) and two_pass[3].cached
    assert auto[3].chunks == two_pass[3].chunks and (auto[3].chunks == 1) == (chunk == 64)
    assert_same(auto, two_pass)


def test_bf16_cached_step_reaches_every_weight(moe_dir):
    """bf16 with one autocast context a pass (weights cast once): the gradients still reach every weight and
    match the naive bf16 step's."""
    out = []
    for mode, kw in (("uncached", {}), ("cached", dict(chunk_size=3, cache="auto"))):
        cfg = StageConfig(temperature=0.05, matryoshka_dims=(32, 16), batch_size=8)
        loss_fn = make_loss(cfg, (32, 16))
        q, d, n = batch()
        enc = TextEncoder.load(moe_dir)
        enc.bf16 = True
        set_dropout(enc.model, 0.0)
        enc.model.train()
        if mode == "uncached":
            uncached(enc, q, d, n, loss_fn, 0.5, 2)
        else:
            res = cached_step(enc, q, d, n, loss_fn, max_query_length=16, max_doc_length=24, aux_coef=0.5, top_k=2,
                              **kw)
            assert res.cached and res.chunks > 2
        out.append(grads(enc.model))
    ref, got = out
    for name, g in ref.items():
        if g.abs().sum() > 0:
            cos = torch.nn.functional.cosine_similarity(g.flatten(), got[name].flatten(), dim=0)
            assert cos > 0.98, (name, float(cos))


def test_chunk_size_does_not_change_the_step(moe_dir):
    cfg = StageConfig(temperature=0.05, batch_size=8)
    loss_fn = make_loss(cfg, (32,))
    q, d, n = batch()
    out = []
    for chunk in (2, 5):
        enc = TextEncoder.load(moe_dir)
        set_dropout(enc.model, 0.0)
        res = cached_step(enc, q, d, n, loss_fn, max_query_length=16, max_doc_length=24, chunk_size=chunk,
                          aux_coef=0.01, top_k=2)
        out.append((res.loss, grads(enc.model)))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-6)
    for name in out[0][1]:
        torch.testing.assert_close(out[0][1][name], out[1][1][name], rtol=1e-4, atol=1e-6)


def test_sorted_packing_pads_less_within_the_same_budget(moe_dir):
    enc = TextEncoder.load(moe_dir)
    short = [f"w{i}" for i in range(12)]
    long = ["word " * (3 + 2 * i) for i in (7, 0, 11, 3, 9, 1, 5, 10, 2, 8, 4, 6)]  # lengths in random order
    sides = {"q": (short, 16), "d": (long, 24)}
    seq = plan_chunks(enc, sides, 4, packing="sequential")
    srt = plan_chunks(enc, sides, 4, packing="sorted")
    assert [c.ids.shape[0] for c in seq] == [4] * 6
    assert sum(c.ids.numel() for c in srt) < sum(c.ids.numel() for c in seq)
    assert all(c.ids.numel() <= 4 * 24 for c in srt)  # the budget: chunk_size texts of the longest length
    seen = sorted((k, int(i)) for c in srt for k, _, index in c.parts for i in index)
    assert seen == sorted([("q", i) for i in range(12)] + [("d", i) for i in range(12)])
    for c in srt:  # every row keeps its own tokens
        for kind, rows, index in c.parts:
            for r, i in zip(rows.tolist(), index.tolist(), strict=True):
                want = enc.tokenize([sides[kind][0][i]], sides[kind][1])[0][0]
                assert c.ids[r, : len(want)].tolist() == want.tolist() and c.mask[r].sum() == len(want)
    with pytest.raises(ValueError, match="packing must be one of"):
        plan_chunks(enc, sides, 4, packing="random")
