"""Held-out evaluation data, enforced in code: never read by training, filtering or mining.

* All of SciFact: test *and* train split, queries and corpus (the shipped model is zero-shot on it).
* All of Cranfield.
* One squad_shifts domain: ``HELD_OUT_SQUAD_DOMAIN`` (New York Times articles). The other domains may train.
* ``techfaq``: the Python and Debian FAQs, built from Debian packages by ``python -m trainer heldout-build``
  (`trainer.heldout_sets`).
* XQuAD in every language (``xquad-<lang>`` in the shared BEIR folder, and any folder whose name starts with
  ``xquad``, cross-lingual copies included). Its English paragraphs and questions are SQuAD v1.1 dev, which is
  inside the ``squad_shifts`` training source (domain ``wiki``) and under Disfl-QA (SQuAD 2.0 dev paragraphs):
  decontamination removes them from training.

Four guards: BEIR folders are refused by name (or name prefix), by a ``heldout.json`` marker that every
held-out folder built here carries, and by the sha256 of their qrels / queries / corpus files (so a renamed copy
is caught too); training records are checked by ``source``; and training records are decontaminated against the
held-out query texts *and* document texts, when those files are on this machine: a training text is dropped when
it equals a held-out text after `normalise` (Unicode NFKC, case folded, invisible format characters removed,
punctuation and whitespace runs collapsed), or when it contains any ``NGRAM``-word span of a held-out document
(so a paragraph copied with an edit, or inside a longer text, is caught too). Evaluation (``trainer.evaluate``)
is the only reader allowed to open held-out data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from pathlib import Path

from embedder.settings import sha256

log = logging.getLogger(__name__)

HELD_OUT_SQUAD_DOMAIN = "nyt"
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
    "8a984dcea5b23697a3099e9403c7e4761f3fab17598897cb98543b68d17c86d4": "xquad qrels/test.tsv (every language)",
    "317af9f572f3cdaf0ea78c65ba6836b0c4fc08926a49d297fcb8145e4d73c0ec": "xquad-en queries.jsonl",
    "291ec9036c41736e00ba28b4cb7fd8bd9cdf149269b807791b80e3daf4d52d57": "xquad-en corpus.jsonl",
    "203b07cb81f000a5069824bb9fdc993117f8209b1acc4bbb8c679c800547293d": "xquad-de queries.jsonl",
    "372e4a3d6900947a68a322912be17f964950319aae14be593ff8b141de4cca48": "xquad-de corpus.jsonl",
    "49c33d3d98a239a5b788f12603ace96f22e0fb7c45a5a95669fcd2fcf20b26b2": "xquad-es queries.jsonl",
    "7a7791f05416ed46db1ff424b26352f973a1af6e12569c3836af7ba1028434bc": "xquad-es corpus.jsonl",
    "1ba8901d2eb6c3874b757ac96d79332a9bb73e0517c6a037b67e7021a9052ba5": "xquad-zh queries.jsonl",
    "f21242e9f91e431bd8c0d92a831a3c69542a414d02c7c9b10bd362464762e336": "xquad-zh corpus.jsonl",
    "a461749cbe8054b26472520495b1c281c637b046b95267900e8058044aa3a84d": "xquad-ar queries.jsonl",
    "b58da2edeeca0906e7325d3da823d8d1a6232068f30a993cda0b60a7353fd65f": "xquad-ar corpus.jsonl",
    "5bb815e2c641f427893ec3e44c8320a8f68a06886ebf251d1fd2756866224547": "xquad-hi queries.jsonl",
    "ce3245f87ef725abe6f33641baad41d1cdbb5479d5eb0da495363176ccec050a": "xquad-hi corpus.jsonl",
    "f1fb9e166106e3e0282625682b0c2f957b13112fd6c52eb22958a219c4b8fd34": "xquad-ru queries.jsonl",
    "6f4cd9c3abb325132ef81c64b249d5c39f818f7d6d8918a48b198a1a28b990d2": "xquad-ru corpus.jsonl",
}
# Folder names (lower case) held out in every split.
HELD_OUT_COLLECTIONS = ("scifact", "cranfield", "techfaq", f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}", "xquad-*")
HELD_OUT_PREFIXES = ("xquad",)  # folder names starting with one of these are held out too (every language)
# Record sources (lower case prefixes) that are held out.
HELD_OUT_SOURCES = ("scifact", "cranfield", "techfaq", f"squad_shifts/{HELD_OUT_SQUAD_DOMAIN}",
                    f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}", *HELD_OUT_PREFIXES)
NGRAM = 13  # a training text containing this many consecutive (normalised) words of a held-out document is dropped
# Zero-width and other invisible format characters (soft hyphen, ZWSP/ZWNJ/ZWJ, direction marks, BOM): removed.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


class HeldOutError(ValueError):
    """Raised when training, filtering or mining would read held-out evaluation data."""


def check_beir(folder: str | Path, split: str) -> None:
    """Raise `HeldOutError` if training, filtering or mining may not read ``split`` of the BEIR folder."""
    folder = Path(folder)
    name = folder.resolve().name.lower()
    if name in HELD_OUT_COLLECTIONS or name.startswith(HELD_OUT_PREFIXES):
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
    """The form two texts are compared in: NFKC (composed accents, full-width and ligature forms folded), case
    folded, invisible format characters removed, every run of non-word characters (punctuation, quotes of any
    style, whitespace) one space."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    return re.sub(r"\W+", " ", text).strip()


def _digest(norm: str) -> str:
    return hashlib.blake2b(norm.encode(), digest_size=12).hexdigest()


def _ngrams(norm: str) -> set[int]:
    """Hashes (this process's ``hash``: never stored) of every ``NGRAM``-word span of a normalised text."""
    words = norm.split()
    return {hash(tuple(words[i:i + NGRAM])) for i in range(len(words) - NGRAM + 1)}


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


class Decontaminator:
    """Normalised digests of held-out query and document texts, and the ``NGRAM``-word spans of the documents;
    ``is_held_out(text)`` tells a training text to drop."""

    def __init__(self, digests: set[str] | None = None):
        self.digests = set(digests or ())
        self.spans: set[int] = set()

    def add(self, texts, documents: bool = False) -> None:
        """Held-out texts; ``documents``: also their word spans (paragraphs, abstracts, answers)."""
        for t in texts:
            norm = normalise(t)
            if norm:
                self.digests.add(_digest(norm))
                if documents:
                    self.spans |= _ngrams(norm)

    def is_held_out(self, text: str) -> bool:
        if not self.digests:
            return False
        norm = normalise(text)
        if _digest(norm) in self.digests:
            return True
        return bool(self.spans) and norm.count(" ") >= NGRAM - 1 and not self.spans.isdisjoint(_ngrams(norm))

    def add_beir(self, folder: Path) -> None:
        """Every query and every document (``title text`` and ``text`` alone) of a held-out BEIR folder."""
        if (folder / "queries.jsonl").is_file():
            self.add(q["text"] for q in _jsonl(folder / "queries.jsonl"))
        if (folder / "corpus.jsonl").is_file():
            for d in _jsonl(folder / "corpus.jsonl"):
                self.add((d.get("text") or "", f"{d.get('title') or ''} {d.get('text') or ''}"), documents=True)

    @classmethod
    def from_files(cls, beir_root: Path | None, squad_dir: Path | None, folders: tuple[Path, ...] = ()
                   ) -> Decontaminator:
        """Held-out texts of the shared BEIR folders (SciFact, Cranfield, every ``xquad*`` language), the held-out
        squad_shifts file and ``folders``, if present."""
        dec = cls()
        if beir_root is not None:
            for name in ("scifact", "cranfield"):
                dec.add_beir(beir_root / name)
            if beir_root.is_dir():
                for folder in sorted(beir_root.iterdir()):
                    if folder.is_dir() and folder.name.lower().startswith(HELD_OUT_PREFIXES):
                        dec.add_beir(folder)
        for folder in folders:
            dec.add_beir(Path(folder))
        if squad_dir is not None:
            path = squad_dir / f"{HELD_OUT_SQUAD_DOMAIN}_v1.0.json"
            if path.is_file():
                data = json.loads(path.read_text())
                dec.add(qa["question"] for art in data["data"] for p in art["paragraphs"] for qa in p["qas"])
                dec.add((p["context"] for art in data["data"] for p in art["paragraphs"]), documents=True)
        log.info("decontamination: %d held-out query and document texts, %d document spans of %d words",
                 len(dec.digests), len(dec.spans), NGRAM)
        return dec
