"""GradCache: the chunked, cached step gives the uncached step's loss and gradients."""

import pytest
import torch
from trainer_helpers import synthetic_pairs

from embedder.moe import load_balancing_loss
from trainer.config import StageConfig
from trainer.encode import TextEncoder
from trainer.gradcache import cached_step
from trainer.loop import make_loss, set_dropout


def batch(n=8, k=2):
    pairs = synthetic_pairs(n, seed=3, negs=k)
    return [p.query for p in pairs], [p.pos for p in pairs], [x for p in pairs for x in p.negs]


def uncached(enc, queries, docs, negs, loss_fn, aux_coef, top_k):
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


@pytest.mark.parametrize("dropout,chunk", [(0.0, 3), (0.1, 64)])
def test_cached_step_equals_uncached(moe_dir, dropout, chunk):
    cfg = StageConfig(temperature=0.05, symmetric=True, matryoshka_dims=(32, 16), batch_size=8)
    loss_fn = make_loss(cfg, (32, 16))
    q, d, n = batch()
    results = []
    for mode in ("uncached", "cached"):
        enc = TextEncoder.load(moe_dir)
        set_dropout(enc.model, dropout)
        enc.model.train()
        torch.manual_seed(0)
        if mode == "uncached":
            loss, aux = uncached(enc, q, d, n, loss_fn, 0.5, 2)
        else:
            res = cached_step(enc, q, d, n, loss_fn, max_query_length=16, max_doc_length=24, chunk_size=chunk,
                              aux_coef=0.5, top_k=2)
            loss, aux = res.contrastive, res.balancing
            assert res.loss == pytest.approx(loss + 0.5 * aux, rel=1e-6)
        results.append((loss, aux, grads(enc.model)))
    (l0, a0, g0), (l1, a1, g1) = results
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert a1 == pytest.approx(a0, rel=1e-5)
    assert a0 > 1.0  # routing is not perfectly uniform, so the balancing term is live
    router = [k for k in g0 if "router" in k]
    assert router and any(g0[k].abs().sum() > 0 for k in router)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-6, msg=name)


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
