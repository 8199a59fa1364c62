"""onnxruntime intra-op thread spinning on vs off, in one process, interleaved (the machine is noisy).

(a) a serving process's work: one short query embedded, then the store searched (hybrid, k=10) right after, on a
    store built by bench/scale.py (``--store``; without it, the embedding alone);
(b) bulk embedding: batches of 32 passages of ~200 tokens, 3 rounds, order alternating.

Both sessions are the shipped model's int8 file with the runtime's own options, differing only in
``session.intra_op.allow_spinning``.  The serving process runs with spinning off, the embedding workers with it on
(embedder.runtime.open_session).

    python bench/scale.py --phase build --mode int8 --points 1000000 --folder data/bench/s1m/int8   # once
    python bench/ort_spinning.py --store data/bench/s1m/int8 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import NAME, seed_texts, shipped_model  # noqa: E402

from embedder.runtime import Embedder  # noqa: E402
from indexer.sparse import Bm25Encoder  # noqa: E402
from indexer.store.base import QuerySpec  # noqa: E402


def pct(samples: list[float]) -> list[float]:
    a = np.asarray(samples) * 1000
    return [round(float(np.percentile(a, 50)), 2), round(float(np.percentile(a, 95)), 2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=None, help="a bench/scale.py store folder (int8 or other)")
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model = shipped_model()
    embedders = {"on": Embedder(model, device="cpu", spinning=True), "off": Embedder(model, device="cpu")}
    texts = seed_texts()
    queries = [" ".join(texts[i % len(texts)].split()[:6]) for i in range(args.queries)]
    bm25, col, root = Bm25Encoder(), None, None
    if args.store is not None:
        from indexer.store.edge import EdgeRoot

        root = EdgeRoot(args.store)
        col = root.open(NAME)
    lat = {k: {"embed": [], "search": [], "total": []} for k in embedders}
    for i, q in enumerate(queries):
        for k in (("on", "off") if i % 2 == 0 else ("off", "on")):
            t0 = time.perf_counter()
            v = embedders[k].embed_query(q)  # (D,)
            t1 = time.perf_counter()
            if col is not None:
                col.query(QuerySpec(limit=10, dense=v, sparse=bm25.query(q), hnsw_ef=128))
            t2 = time.perf_counter()
            for key, dt in (("embed", t1 - t0), ("search", t2 - t1), ("total", t2 - t0)):
                lat[k][key].append(dt)
            time.sleep(0.05)  # a user's pause: the threads either spin through it or sleep
    passages = [" ".join(texts[j % len(texts)].split() * 5) for j in range(32 * 6)]
    bulk: dict[str, list[float]] = {"on": [], "off": []}
    for rnd in range(3):
        for k in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
            t0 = time.perf_counter()
            embedders[k].embed_documents(passages, batch_size=32)
            bulk[k].append(len(passages) / (time.perf_counter() - t0))
    out = {f"spinning_{k}": {f"{m}_p50_p95_ms": pct(s) for m, s in d.items()} for k, d in lat.items()}
    for k, v in bulk.items():
        out[f"spinning_{k}"]["bulk_texts_per_s"] = round(float(np.median(v)), 1)
    out["total_p50_ratio_on_vs_off"] = round(out["spinning_on"]["total_p50_p95_ms"][0]
                                             / out["spinning_off"]["total_p50_p95_ms"][0], 2)
    out["bulk_ratio_off_vs_on"] = round(out["spinning_off"]["bulk_texts_per_s"]
                                        / out["spinning_on"]["bulk_texts_per_s"], 3)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    if root is not None:
        root.close()


if __name__ == "__main__":
    main()
