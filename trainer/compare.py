"""``python -m trainer compare RUN_A RUN_B``: paired tests of two evaluated models, per set and on the average.

A run is a recipe run folder (its ``eval.json``; ``RUN:base`` picks the baseline rows evaluated in that run) or
a JSON file written by ``python -m trainer eval --json``, or several of those joined by ``+`` (one model
evaluated in several commands, e.g. ``evals/M.int8.english.json+evals/M.int8.xquad.json``). Both runs must
hold per-query scores for the same sets; the test uses the queries the two have in common (normally all). B is
compared against A: a positive difference means B is better.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .stats import RESAMPLES, SEED, paired_test

MEASURE_NAMES = ("nDCG@10", "R@100")
AVERAGE = "average"


def _rows(data, who: str) -> list[dict]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "per_query" in data:
        return [data]
    if isinstance(data, dict):  # a recipe eval.json: {"set:split": {"base": row, "model": row}}
        rows = [v[who] for v in data.values() if isinstance(v, dict) and who in v]
        if rows:
            return rows
    raise ValueError(f"no evaluation rows for {who!r} in this file")


def load_evals(spec: str | Path) -> dict[str, dict]:
    """{"dataset:split": row} of a run folder, ``RUN:base``, an eval JSON file, or ``A+B+...`` of those."""
    spec = str(spec)
    if "+" in spec and not Path(spec).exists():
        out: dict[str, dict] = {}
        for part in spec.split("+"):
            rows = load_evals(part)
            twice = sorted(set(out) & set(rows))
            if twice:
                raise ValueError(f"{part}: sets already given by an earlier file of {spec!r}: {twice}")
            out.update(rows)
        return out
    who = "model"
    if spec.endswith((":base", ":model")) and not Path(spec).exists():
        spec, who = spec.rsplit(":", 1)
    path = Path(spec)
    if path.is_dir():
        path = path / "eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation results (run `python -m trainer eval --json` or a recipe)")
    out = {}
    for row in _rows(json.loads(path.read_text()), who):
        if "per_query" not in row:
            raise ValueError(f"{path}: {row.get('dataset')} has no per-query scores (evaluated by an older "
                             "trainer); re-run the evaluation")
        out[f"{row['dataset']}:{row['split']}"] = row
    return out


def compare(a: dict[str, dict], b: dict[str, dict], measures=MEASURE_NAMES, resamples: int = RESAMPLES,
            seed: int = SEED) -> dict:
    """{measure: {set: PairedResult json, ..., "average": ...}} over the sets both runs evaluated."""
    sets = [k for k in a if k in b]
    if not sets:
        raise ValueError(f"the runs share no evaluation set: {sorted(a)} vs {sorted(b)}")
    out: dict = {"sets": sets, "only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a)),
                 "model_a": a[sets[0]].get("model_id"), "model_b": b[sets[0]].get("model_id")}
    for m in measures:
        strata_a, strata_b, res = [], [], {}
        for k in sets:
            qa, qb = a[k]["per_query"][m], b[k]["per_query"][m]
            qids = sorted(set(qa) & set(qb))
            if not qids:
                raise ValueError(f"{k}: the runs share no query")
            xa = np.array([qa[q] for q in qids])
            xb = np.array([qb[q] for q in qids])
            strata_a.append(xa)
            strata_b.append(xb)
            res[k] = paired_test(xa, xb, resamples, seed).to_json()
        res[AVERAGE] = paired_test(strata_a, strata_b, resamples, seed).to_json()
        out[m] = res
    return out


def table(result: dict, measure: str = "nDCG@10", names: tuple[str, str] = ("A", "B")) -> str:
    """A markdown table of one measure: A, B, B - A with its 95% interval, and the p-value."""
    a, b = names
    lines = [f"| set | {a} | {b} | {b} - {a} (95% CI) | p |", "|---|---|---|---|---|"]
    for k, r in result[measure].items():
        lines.append(f"| {k} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} ({r['ci95'][0]:+.4f}, "
                     f"{r['ci95'][1]:+.4f}) | {r['p']:.3f} |")
    return "\n".join(lines)
