"""Training records and their readers: JSONL pairs/triplets (ours or the user's) and BEIR folders.

A record is ``{"query", "pos", "negs": [...], "source", "task"}``. The readers also take the spellings
common elsewhere (``anchor``/``positive``/``negative``, ``question``/``answer``, a single ``neg``), so a user can
train on their own data. Bad lines are reported with file and line number and skipped; a bad file is
reported and the others still load; an empty result is an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .heldout import HeldOutError, check_beir, check_source

log = logging.getLogger(__name__)

TASKS = ("retrieval", "symmetric")  # symmetric: both sides are documents (translations, paragraph halves)
QUERY_KEYS = ("query", "anchor", "question", "text_a", "sentence1")
POS_KEYS = ("pos", "positive", "document", "answer", "text_b", "sentence2")
NEG_KEYS = ("negs", "negatives", "negative", "neg", "hard_negatives")


@dataclass(frozen=True)
class Pair:
    query: str
    pos: str
    negs: tuple[str, ...] = ()
    source: str = "user"
    task: str = "retrieval"

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not self.query.strip():
            raise ValueError("query must be a non-empty string")
        if not isinstance(self.pos, str) or not self.pos.strip():
            raise ValueError("pos must be a non-empty string")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if any(not isinstance(n, str) or not n.strip() for n in self.negs):
            raise ValueError("negs must be non-empty strings")

    def to_json(self) -> dict:
        return {"query": self.query, "pos": self.pos, "negs": list(self.negs), "source": self.source,
                "task": self.task}


@dataclass
class ReadReport:
    """What a read loaded and what it refused, per file."""

    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def error(self, msg: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(msg)
        log.warning("%s", msg)


def _first(obj: dict, keys: tuple[str, ...]):
    for k in keys:
        if k in obj and obj[k] is not None:
            return obj[k]
    return None


def record_from_json(obj: dict, default_source: str) -> Pair:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    query, pos, negs = _first(obj, QUERY_KEYS), _first(obj, POS_KEYS), _first(obj, NEG_KEYS)
    if query is None or pos is None:
        raise ValueError(f"needs a query ({'/'.join(QUERY_KEYS)}) and a positive ({'/'.join(POS_KEYS)}); "
                         f"got keys {sorted(obj)}")
    if isinstance(pos, list):  # several positives: the first is the pair's positive
        if not pos:
            raise ValueError("empty positive list")
        pos = pos[0]
    negs = [] if negs is None else ([negs] if isinstance(negs, str) else list(negs))
    return Pair(query=query, pos=pos, negs=tuple(negs), source=str(obj.get("source") or default_source),
                task=str(obj.get("task") or "retrieval"))


def read_jsonl(path: str | Path, report: ReadReport | None = None, default_source: str | None = None) -> list[Pair]:
    """Records of one JSONL file; bad lines are reported (file:line: cause) and skipped."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    source = default_source or path.stem
    out: list[Pair] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = record_from_json(json.loads(line), source)
                check_source(rec.source, f"{path}:{n}")
            except HeldOutError:
                raise
            except (ValueError, TypeError) as exc:
                report.error(f"{path}:{n}: {exc}")
                continue
            out.append(rec)
    report.counts[str(path)] = len(out)
    return out


def write_jsonl(path: str | Path, records: Iterable[Pair]) -> int:
    """Write records atomically (temp file + rename): a killed write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


# ---------------------------------------------------------------- BEIR


def load_beir(folder: str | Path, split: str = "test") -> tuple[dict[str, dict], dict[str, str], dict[str, dict]]:
    """(corpus {id: {title, text}}, queries {id: text}, qrels {qid: {did: score}}) of a BEIR folder.

    This reader does not apply the held-out rules: evaluation uses it directly; training goes through
    `read_beir_pairs`, which does.
    """
    folder = Path(folder)
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
             "qrels": folder / "qrels" / f"{split}.tsv"}
    for name, p in paths.items():
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing; a BEIR folder needs corpus.jsonl, queries.jsonl and "
                                    f"qrels/<split>.tsv ({name})")
    corpus: dict[str, dict] = {}
    for n, line in enumerate(open(paths["corpus"], encoding="utf-8"), 1):
        if line.strip():
            try:
                d = json.loads(line)
                corpus[str(d["_id"])] = {"title": d.get("title") or "", "text": d.get("text") or ""}
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{paths['corpus']}:{n}: bad corpus line ({exc})") from None
    queries: dict[str, str] = {}
    for n, line in enumerate(open(paths["queries"], encoding="utf-8"), 1):
        if line.strip():
            try:
                d = json.loads(line)
                queries[str(d["_id"])] = d["text"]
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{paths['queries']}:{n}: bad query line ({exc})") from None
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(open(paths["qrels"], encoding="utf-8"), 1):
        parts = line.rstrip("\n").split("\t")
        if not line.strip() or (n == 1 and not parts[-1].lstrip("-").isdigit()):
            continue  # header
        if len(parts) != 3:
            raise ValueError(f"{paths['qrels']}:{n}: expected 'query-id<TAB>corpus-id<TAB>score'")
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return corpus, queries, qrels


def doc_text(doc: dict) -> str:
    """A BEIR document as one string: ``title + " " + text`` (how the reference figures were measured)."""
    return (doc.get("title", "") + " " + doc.get("text", "")).strip()


def read_beir_pairs(folder: str | Path, split: str = "train", source: str | None = None) -> list[Pair]:
    """Training pairs (query, judged-relevant document) of one split; refuses held-out data."""
    folder = Path(folder)
    check_beir(folder, split)
    corpus, queries, qrels = load_beir(folder, split)
    src = source or f"{folder.resolve().name}/{split}"
    out = []
    for qid, docs in qrels.items():
        if qid not in queries:
            continue
        for did, score in docs.items():
            if score > 0 and did in corpus and doc_text(corpus[did]):
                out.append(Pair(query=queries[qid], pos=doc_text(corpus[did]), source=src))
    return out


def split_spec(spec: str, default_split: str) -> tuple[Path, str]:
    """``"path"`` or ``"path:split"`` (a folder path may itself contain no ':')."""
    if ":" in spec and not Path(spec).exists():
        path, split = spec.rsplit(":", 1)
        return Path(path), split
    return Path(spec), default_split


def read_training(specs: Iterable[str], report: ReadReport | None = None) -> list[Pair]:
    """Read JSONL files, folders of JSONL files and BEIR folders (``path[:split]``, default train).

    A file that cannot be read is reported and skipped; held-out data raises `HeldOutError`.
    """
    report = report if report is not None else ReadReport()
    out: list[Pair] = []
    for spec in specs:
        path, split = split_spec(spec, "train")
        try:
            if path.is_dir() and (path / "corpus.jsonl").is_file():
                recs = read_beir_pairs(path, split)
                report.counts[f"{path}:{split}"] = len(recs)
                out.extend(recs)
            elif path.is_dir():
                files = sorted(path.glob("*.jsonl"))
                if not files:
                    report.error(f"{path}: no .jsonl files and no corpus.jsonl (not a BEIR folder)")
                for f in files:
                    out.extend(_read_file(f, report))
            elif path.is_file():
                out.extend(_read_file(path, report))
            else:
                report.error(f"{path}: no such file or folder")
        except HeldOutError:
            raise
        except (OSError, ValueError) as exc:
            report.error(f"{path}: {exc}")
    if not out:
        raise ValueError(f"no training records in {list(specs)}: " + "; ".join(report.errors[:5]))
    return out


def _read_file(path: Path, report: ReadReport) -> list[Pair]:
    try:
        return read_jsonl(path, report)
    except UnicodeDecodeError as exc:
        report.error(f"{path}: not UTF-8 text ({exc.reason})")
        return []
