"""Held-out evaluation data, enforced in code: never read by training, filtering or mining.

* SciFact test (queries judged in ``qrels/test.tsv``): the train split may be used, the test split never.
* All of Cranfield.
* One squad_shifts domain: ``HELD_OUT_SQUAD_DOMAIN`` (New York Times articles). The other four domains train.

Three guards: BEIR folders are checked by name and by the sha256 of their qrels / queries files (so a
renamed copy is caught too); training records are checked by ``source``; and training queries are
decontaminated against the held-out query texts (normalised), when those files are on this machine.
Evaluation (``trainer.evaluate``) is the only reader allowed to open held-out data.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from embedder.settings import sha256

log = logging.getLogger(__name__)

HELD_OUT_SQUAD_DOMAIN = "nyt"
SQUAD_DOMAINS = ("wiki", "new_wiki", "nyt", "reddit", "amazon")
# sha256 of held-out files in the shared BEIR folders (README of ../shared/data/beir).
HELD_OUT_SHA256 = {
    "18a49075af697c9bcdb3cf7b3618a12b32be0697a7e15f10a07de09d914d59b2": "scifact qrels/test.tsv",
    "1eea9d17af5fea31ca3a7a22c78b50fd6a8037484ab4389fe0f201b7d04a0cb5": "cranfield qrels/test.tsv",
    "70914f4cee2b861959813356b008b8c61b78400e4de7e03193c3ea0cff72a63f": "cranfield queries.jsonl",
    "28fc599dd31e8aedf38b2aad2127530bf9f93e1479b9c2b5c9206d4dc41e9fad": "cranfield corpus.jsonl",
}
HELD_OUT_COLLECTIONS = {"cranfield": None, "scifact": ("test",)}  # None = every split


class HeldOutError(ValueError):
    """Raised when training, filtering or mining would read held-out evaluation data."""




def check_beir(folder: str | Path, split: str) -> None:
    """Raise `HeldOutError` if training may not read ``split`` of the BEIR folder ``folder``."""
    folder = Path(folder)
    name = folder.resolve().name.lower()
    for coll, splits in HELD_OUT_COLLECTIONS.items():
        if name == coll and (splits is None or split in splits):
            what = "every split" if splits is None else f"the {split} split"
            raise HeldOutError(f"{folder}: {what} of {coll} is held out for evaluation; it may not be used for "
                               "training, filtering or mining")
    for path in (folder / "qrels" / f"{split}.tsv", folder / "queries.jsonl", folder / "corpus.jsonl"):
        if path.is_file() and path.stat().st_size < 64 << 20:
            what = HELD_OUT_SHA256.get(sha256(path))
            if what:
                raise HeldOutError(f"{path}: identical to the held-out {what}; it may not be used for training")


def check_source(source: str, where: str = "") -> None:
    """Raise `HeldOutError` for a training record whose source is held out."""
    s = source.lower()
    if s == f"squad_shifts/{HELD_OUT_SQUAD_DOMAIN}" or s.startswith(("cranfield", "scifact/test")):
        raise HeldOutError(f"{where or 'record'}: source {source!r} is held out for evaluation")


def check_squad_domain(domain: str) -> None:
    if domain == HELD_OUT_SQUAD_DOMAIN:
        raise HeldOutError(f"squad_shifts domain {domain!r} is held out for evaluation")


def normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _digest(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=12).hexdigest()


class Decontaminator:
    """Normalised digests of held-out query texts; ``is_held_out(text)`` tells a training query to drop."""

    def __init__(self, digests: set[str] | None = None):
        self.digests = set(digests or ())

    def add(self, texts) -> None:
        self.digests.update(_digest(t) for t in texts if normalise(t))

    def is_held_out(self, text: str) -> bool:
        return bool(self.digests) and _digest(text) in self.digests

    @classmethod
    def from_files(cls, beir_root: Path | None, squad_dir: Path | None) -> Decontaminator:
        """Collect held-out queries from the shared BEIR folders and the held-out squad_shifts file, if present."""
        import json

        dec = cls()
        if beir_root is not None:
            scifact, cranfield = beir_root / "scifact", beir_root / "cranfield"
            if (scifact / "qrels" / "test.tsv").is_file() and (scifact / "queries.jsonl").is_file():
                ids = {line.split("\t")[0] for line in (scifact / "qrels" / "test.tsv").read_text().splitlines()[1:]}
                dec.add(q["text"] for q in map(json.loads, (scifact / "queries.jsonl").open()) if q["_id"] in ids)
            if (cranfield / "queries.jsonl").is_file():
                dec.add(q["text"] for q in map(json.loads, (cranfield / "queries.jsonl").open()))
        if squad_dir is not None:
            path = squad_dir / f"{HELD_OUT_SQUAD_DOMAIN}_v1.0.json"
            if path.is_file():
                data = json.loads(path.read_text())
                dec.add(qa["question"] for art in data["data"] for p in art["paragraphs"] for qa in p["qas"])
        log.info("decontamination: %d held-out query texts", len(dec.digests))
        return dec
