"""Hard-negative mining: the retriever's top candidates for each query, minus likely false negatives.

Per source, the candidate pool is every distinct positive of that source, plus the documents of a BEIR corpus
named for it (``source=path``; the held-out rules apply: Cranfield is refused). For each query the retriever's
top ``candidates`` are taken in score order, the query's own positive is dropped, and so is any candidate that
scores above ``margin`` x the positive's score (the false-negative guard: a document that close is likely
relevant too). The first ``num_negs`` left become ``negs``, after any negatives the record already had
(e.g. VitaminC's refuting evidence).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import torch

from .batching import prefixes, side_experts
from .config import MineConfig
from .data import Pair, doc_text
from .encode import TextEncoder
from .evaluate import search
from .heldout import check_beir

log = logging.getLogger(__name__)


def select_negatives(cand_scores: list[float], cand_ids: list[int], pos_score: float, pos_ids: set[int],
                     margin: float, k: int) -> tuple[list[int], int]:
    """Candidates in score order -> (up to k negative ids, number dropped by the false-negative guard)."""
    out, guarded = [], 0
    for score, j in zip(cand_scores, cand_ids, strict=True):
        if j in pos_ids:
            continue
        if score > margin * pos_score:
            guarded += 1
            continue
        out.append(j)
        if len(out) == k:
            break
    return out, guarded


def corpus_docs(spec: str) -> tuple[str, list[str]]:
    """``"source=path"`` -> (source, document texts of the BEIR folder's corpus.jsonl)."""
    source, sep, path = spec.partition("=")
    if not sep:
        raise ValueError(f"mine corpus {spec!r} must look like source=path/to/beir_folder")
    folder = Path(path)
    check_beir(folder, "train")
    docs = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                text = doc_text(json.loads(line))
                if text:
                    docs.append(text)
    return source, docs


def mine_source(records: list[Pair], retriever: TextEncoder, cfg: MineConfig, extra_docs: list[str] = (),
                progress: bool = True) -> tuple[list[Pair], dict]:
    name = records[0].source
    docs = sorted({r.pos for r in records} | set(extra_docs))
    index = {t: i for i, t in enumerate(docs)}
    qp, dp = prefixes(retriever.settings, records[0].task, True)
    qt, dt = side_experts(retriever.tasks, records[0].task)  # a task-expert retriever: the experts it was trained with
    q = retriever.embed([r.query for r in records], max_length=cfg.max_length, batch_size=cfg.batch_size,
                        prefix=qp, desc=f"mine {name} queries", progress=progress, task=qt)  # (N, D)
    d = retriever.embed(docs, max_length=cfg.max_length, batch_size=cfg.batch_size, prefix=dp,
                        desc=f"mine {name} docs", progress=progress, task=dt)  # (U, D)
    # positives of the same query text count as positives (a query may have several judged documents)
    pos_of: dict[str, set[int]] = defaultdict(set)
    for r in records:
        pos_of[r.query].add(index[r.pos])
    own = torch.tensor([index[r.pos] for r in records])  # (N,)
    pos_scores = (q * d[own]).sum(-1)  # (N,)
    k = min(cfg.candidates + len(max(pos_of.values(), key=len)), len(docs))
    scores, idx = search(q, d, k)  # (N, k)
    out, guarded, with_negs = [], 0, 0
    for n, r in enumerate(records):
        ids, g = select_negatives(scores[n, : k].tolist(), idx[n, : k].tolist(), float(pos_scores[n]),
                                  pos_of[r.query], cfg.margin, cfg.num_negs)
        guarded += g
        negs = list(dict.fromkeys([*r.negs, *(docs[j] for j in ids)]))[: max(cfg.num_negs, len(r.negs))]
        with_negs += bool(negs)
        out.append(Pair(r.query, r.pos, tuple(negs), r.source, r.task))
    stats = {"queries": len(records), "pool": len(docs), "with_negs": with_negs, "guard_dropped": guarded}
    log.info("mine %s: %s", name, stats)
    return out, stats


def mine(records: list[Pair], retriever: TextEncoder, cfg: MineConfig, corpora: tuple[str, ...] = (),
         progress: bool = True) -> tuple[list[Pair], dict[str, dict]]:
    """Mine every source in ``cfg.sources`` (all when empty); other records pass unchanged."""
    extra = dict(corpus_docs(spec) for spec in corpora)
    by_source: dict[str, list[Pair]] = defaultdict(list)
    for r in records:
        by_source[r.source].append(r)
    report, out = {}, []
    for source, recs in sorted(by_source.items()):
        if cfg.sources and source not in cfg.sources:
            out.extend(recs)
            continue
        mined, report[source] = mine_source(recs, retriever, cfg, extra.get(source, ()), progress)
        out.extend(mined)
    return out, report
