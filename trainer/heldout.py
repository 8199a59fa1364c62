"""Held-out evaluation data, enforced in code: never read by training, filtering or mining.

* All of SciFact: test *and* train split, queries and corpus (the shipped model is zero-shot on it).
* All of Cranfield.
* One squad_shifts domain: ``HELD_OUT_SQUAD_DOMAIN`` (New York Times articles). The other domains may train.
* ``techfaq``: the Python and Debian FAQs, built from Debian packages by ``python -m trainer heldout-build``
  (`trainer.heldout_sets`).

Four guards: BEIR folders are refused by name, by a ``heldout.json`` marker that every held-out folder built
here carries, and by the sha256 of their qrels / queries / corpus files (so a renamed copy is caught too);
training records are checked by ``source``; and training records are decontaminated against the held-out
query texts *and* document texts (normalised), when those files are on this machine. Evaluation
(``trainer.evaluate``) is the only reader allowed to open held-out data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from embedder.settings import sha256

log = logging.getLogger(__name__)

HELD_OUT_SQUAD_DOMAIN = "nyt"
SQUAD_DOMAINS = ("wiki", "new_wiki", "nyt", "reddit", "amazon")
MARKER = "heldout.json"  # written into every held-out BEIR folder built by this package
# sha256 of held-out files in the shared BEIR folders (../shared/data/beir).
HELD_OUT_SHA256 = {
    "18a49075af697c9bcdb3cf7b3618a12b32be0697a7e15f10a07de09d914d59b2": "scifact qrels/test.tsv",
    "4da2bae808e23316834044eb14db1674f9496190e49a57693f6f13b23d428272": "scifact qrels/train.tsv",
    "067f01aaee010dcffe1197e59e584986503ff6984f15ac3e4d9840fcabd81990": "scifact queries.jsonl",
    "f0d32db0d156b526d75921ed7a76f2cb912902631c87248c5c97c617bad0b60c": "scifact corpus.jsonl",
    "1eea9d17af5fea31ca3a7a22c78b50fd6a8037484ab4389fe0f201b7d04a0cb5": "cranfield qrels/test.tsv",
    "70914f4cee2b861959813356b008b8c61b78400e4de7e03193c3ea0cff72a63f": "cranfield queries.jsonl",
    "28fc599dd31e8aedf38b2aad2127530bf9f93e1479b9c2b5c9206d4dc41e9fad": "cranfield corpus.jsonl",
}
# Folder names (lower case) held out in every split.
HELD_OUT_COLLECTIONS = ("scifact", "cranfield", "techfaq", f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}")
# Record sources (lower case prefixes) that are held out.
HELD_OUT_SOURCES = ("scifact", "cranfield", "techfaq", f"squad_shifts/{HELD_OUT_SQUAD_DOMAIN}",
                    f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}")


class HeldOutError(ValueError):
    """Raised when training, filtering or mining would read held-out evaluation data."""


def check_beir(folder: str | Path, split: str) -> None:
    """Raise `HeldOutError` if training, filtering or mining may not read ``split`` of the BEIR folder."""
    folder = Path(folder)
    name = folder.resolve().name.lower()
    if name in HELD_OUT_COLLECTIONS:
        raise HeldOutError(f"{folder}: every split of {name} (queries and corpus) is held out for evaluation; it "
                           "may not be used for training, filtering or mining")
    if (folder / MARKER).is_file():
        what = json.loads((folder / MARKER).read_text()).get("name", "?")
        raise HeldOutError(f"{folder}: marked held out ({MARKER}: {what}); it may not be used for training, "
                           "filtering or mining")
    for path in (folder / "qrels" / f"{split}.tsv", folder / "queries.jsonl", folder / "corpus.jsonl"):
        if path.is_file() and path.stat().st_size < 64 << 20:
            what = HELD_OUT_SHA256.get(sha256(path))
            if what:
                raise HeldOutError(f"{path}: identical to the held-out {what}; it may not be used for training")


def check_source(source: str, where: str = "") -> None:
    """Raise `HeldOutError` for a training record whose source is held out."""
    if source.lower().startswith(HELD_OUT_SOURCES):
        raise HeldOutError(f"{where or 'record'}: source {source!r} is held out for evaluation")


def check_squad_domain(domain: str) -> None:
    if domain == HELD_OUT_SQUAD_DOMAIN:
        raise HeldOutError(f"squad_shifts domain {domain!r} is held out for evaluation")


def write_marker(folder: Path, name: str, origin: str, licence: str) -> None:
    """Mark a BEIR folder as held out (`check_beir` refuses it under any name)."""
    (folder / MARKER).write_text(json.dumps({"name": name, "origin": origin, "licence": licence,
                                             "rule": "evaluation only: never train, filter, tune or mine on it"},
                                            indent=2) + "\n")


def normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _digest(text: str) -> str:
    return hashlib.blake2b(normalise(text).encode(), digest_size=12).hexdigest()


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


class Decontaminator:
    """Normalised digests of held-out query and document texts; ``is_held_out(text)`` tells a text to drop."""

    def __init__(self, digests: set[str] | None = None):
        self.digests = set(digests or ())

    def add(self, texts) -> None:
        self.digests.update(_digest(t) for t in texts if normalise(t))

    def is_held_out(self, text: str) -> bool:
        return bool(self.digests) and _digest(text) in self.digests

    def add_beir(self, folder: Path) -> None:
        """Every query and every document (``title text`` and ``text`` alone) of a held-out BEIR folder."""
        if (folder / "queries.jsonl").is_file():
            self.add(q["text"] for q in _jsonl(folder / "queries.jsonl"))
        if (folder / "corpus.jsonl").is_file():
            for d in _jsonl(folder / "corpus.jsonl"):
                self.add((d.get("text") or "", f"{d.get('title') or ''} {d.get('text') or ''}"))

    @classmethod
    def from_files(cls, beir_root: Path | None, squad_dir: Path | None, folders: tuple[Path, ...] = ()
                   ) -> Decontaminator:
        """Held-out texts of the shared BEIR folders, the held-out squad_shifts file and ``folders``, if present."""
        dec = cls()
        if beir_root is not None:
            for name in ("scifact", "cranfield"):
                dec.add_beir(beir_root / name)
        for folder in folders:
            dec.add_beir(Path(folder))
        if squad_dir is not None:
            path = squad_dir / f"{HELD_OUT_SQUAD_DOMAIN}_v1.0.json"
            if path.is_file():
                data = json.loads(path.read_text())
                dec.add(qa["question"] for art in data["data"] for p in art["paragraphs"] for qa in p["qas"])
                dec.add(p["context"] for art in data["data"] for p in art["paragraphs"])
        log.info("decontamination: %d held-out query and document texts", len(dec.digests))
        return dec
