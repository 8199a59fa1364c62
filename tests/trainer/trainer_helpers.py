"""Trainer test helpers: synthetic pairs a tiny model can learn, tiny BEIR folders."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("river mountain forest desert ocean island valley canyon glacier volcano meadow prairie swamp lagoon "
         "harbor bridge castle temple market garden library museum stadium airport station factory farm "
         "orchard vineyard bakery kitchen bedroom window ladder hammer needle pencil camera guitar violin "
         "trumpet piano rocket planet comet galaxy crystal copper silver marble granite velvet cotton").split()


def synthetic_pairs(n: int, seed: int = 0, sources: tuple[str, ...] = ("alpha", "beta"), negs: int = 0) -> list:
    """Queries share two distinctive words with their positive; negatives share one."""
    from trainer.data import Pair

    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        a, b, c, e = rng.sample(WORDS, 4)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        neg = tuple(f"{a} {rng.choice(WORDS)} {rng.choice(WORDS)} report" for _ in range(negs))
        out.append(Pair(f"where is the {a} {b}", f"the {a} near the {b} and a {c} {e}", negs=neg,
                        source=rng.choice(sources)))
    return out


def write_beir(folder: Path, pairs, split: str = "test") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fc, open(folder / "queries.jsonl", "w") as fq, \
            open(folder / "qrels" / f"{split}.tsv", "w") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for i, p in enumerate(pairs):
            fc.write(json.dumps({"_id": f"d{i}", "title": "", "text": p.pos}) + "\n")
            fq.write(json.dumps({"_id": f"q{i}", "text": p.query}) + "\n")
            fr.write(f"q{i}\td{i}\t1\n")
    return folder
