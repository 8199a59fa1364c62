"""Consistency filtering and hard-negative mining, including the 0.95 x positive false-negative guard."""

import torch
import torch.nn.functional as F
from trainer_helpers import synthetic_pairs

from trainer.config import FilterConfig, MineConfig
from trainer.data import Pair
from trainer.encode import TextEncoder
from trainer.filtering import consistency_filter, ranks_in_pool
from trainer.mining import mine, select_negatives


def test_ranks_in_pool_matches_naive():
    g = torch.Generator().manual_seed(0)
    q, pos, pool = (F.normalize(torch.randn(n, 6, generator=g), dim=-1) for n in (9, 9, 15))
    same = torch.zeros(9, 15, dtype=torch.bool)
    same[2, 4] = True
    got = ranks_in_pool(q, pos, pool, same, chunk=4)
    for i in range(9):
        s = float(q[i] @ pos[i])
        naive = sum(float(q[i] @ pool[j]) > s for j in range(15) if not same[i, j])
        assert got[i].item() == naive


def test_guard_drops_candidates_too_close_to_the_positive():
    # scores in descending order; positive scores 0.8 -> threshold 0.76
    negs, dropped = select_negatives([0.9, 0.8, 0.77, 0.75, 0.5, 0.4], [7, 1, 3, 4, 5, 6], 0.8, {1}, 0.95, 2)
    assert negs == [4, 5] and dropped == 2
    negs, dropped = select_negatives([0.9, 0.7], [7, 5], 0.8, {1}, 1.0, 3)
    assert negs == [5] and dropped == 1


def test_filter_keeps_consistent_pairs_per_source(tiny_model_dir):
    good = synthetic_pairs(40, seed=1, sources=("s",))
    bad = [Pair(p.query, good[(i + 17) % 40].pos, source="s") for i, p in enumerate(good[:10])]
    enc = TextEncoder.load(tiny_model_dir)
    kept, report = consistency_filter(good + bad, enc, FilterConfig(pool_size=41, top_k=5, max_length=32), 0,
                                      progress=False)
    assert report["s"]["pairs"] == 50 and report["s"]["kept"] == len(kept)
    kept_ids = {id(r) for r in kept}
    assert sum(id(r) in kept_ids for r in good) > sum(id(r) in kept_ids for r in bad)
    assert 0 < report["s"]["kept_fraction"] < 1


def test_mine_respects_the_guard_and_keeps_given_negatives(tiny_model_dir):
    pairs = synthetic_pairs(30, seed=4, sources=("s",))
    pairs[0] = Pair(pairs[0].query, pairs[0].pos, negs=("given negative",), source="s")
    enc = TextEncoder.load(tiny_model_dir)
    cfg = MineConfig(candidates=10, num_negs=3, max_length=32, margin=1.0)
    out, report = mine(pairs, enc, cfg, progress=False)
    assert report["s"]["queries"] == 30 and report["s"]["pool"] == 30
    assert out[0].negs[0] == "given negative"
    assert sum(len(r.negs) == 3 for r in out) >= 5
    q = enc.embed([r.query for r in out], max_length=32, prefix="search_query: ", progress=False)
    p = enc.embed([r.pos for r in out], max_length=32, prefix="search_document: ", progress=False)
    for i, r in enumerate(out):
        assert r.pos not in r.negs and len(r.negs) <= 3
        mined = [n for n in r.negs if n != "given negative"]
        if mined:
            s = enc.embed(mined, max_length=32, prefix="search_document: ", progress=False) @ q[i]
            assert (s <= cfg.margin * float(q[i] @ p[i]) + 1e-5).all()
    strict, rep = mine(pairs, enc, MineConfig(candidates=10, num_negs=3, max_length=32, margin=0.5), progress=False)
    assert rep["s"]["guard_dropped"] > report["s"]["guard_dropped"]
    untouched, rep2 = mine(pairs, enc, MineConfig(sources=("other",)), progress=False)
    assert untouched == pairs and rep2 == {}


def test_a_task_expert_model_filters_and_mines_with_its_query_and_document_experts(tiny_task_model_dir):
    from trainer.batching import prefixes, side_experts

    pairs = synthetic_pairs(30, seed=5, sources=("s",))
    enc = TextEncoder.load(tiny_task_model_dir)
    assert side_experts(enc.tasks, "retrieval") == ("search_query", "search_document")
    kept, report = consistency_filter(pairs, enc, FilterConfig(pool_size=31, top_k=5, max_length=32), 0,
                                      progress=False)
    assert report["s"]["pairs"] == 30 and kept
    cfg = MineConfig(candidates=10, num_negs=3, max_length=32, margin=1.0)
    out, report = mine(pairs, enc, cfg, progress=False)
    qp, dp = prefixes(enc.settings, "retrieval", True)
    q = enc.embed([r.query for r in out], max_length=32, prefix=qp, progress=False, task="search_query")
    p = enc.embed([r.pos for r in out], max_length=32, prefix=dp, progress=False, task="search_document")
    for i, r in enumerate(out):  # the guard was applied in the experts' space: a negative is never above the margin
        if r.negs:
            s = enc.embed(list(r.negs), max_length=32, prefix=dp, progress=False, task="search_document") @ q[i]
            assert (s <= cfg.margin * float(q[i] @ p[i]) + 1e-5).all()
    assert sum(len(r.negs) == 3 for r in out) >= 5
