"""Parsers of the offline training sources: each takes the unpacked files and yields `Pair` records.

Sources (name -> what becomes a pair):
  squad_shifts/<domain>  question -> its paragraph: source squad_shifts = wiki, new_wiki; squad_shifts_web =
                         reddit, amazon (research only, see licences.py); nyt is held out (heldout.py)
  vitaminc               claim -> the evidence that supports it; evidence that refutes it -> hard negatives
  gem                    summary -> article (xsum, wikilingua en + multilingual, mlsum de/es)
  multiemo               a review in one of 10 languages -> the same review in English (aligned by index)
  disfl_qa               disfluent question -> its paragraph
  paragraph              first sentence of a paragraph (>= 4 words) -> the rest of it (multilingual Wikipedia)
  chatterbot             dialog question -> answer (28 languages)
  wordnet                lemma -> its gloss (Debian wordnet-base)
  django_l10n/<locale>   a translated string of Django's message catalogues -> its English original (symmetric;
                         up to ~900 strings in each of ~95 locales; the Django wheel's ``locale/*/LC_MESSAGES/*.po``)

Licences and whether each allows commercial use: trainer/licences.py. SciFact is no source: it is held out.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from .data import Pair
from .heldout import HELD_OUT_SQUAD_DOMAIN, check_squad_domain, write_marker
from .licences import BIGBENCH

log = logging.getLogger(__name__)

SQUAD_FILES = {"wiki": "squaddev_v1.1.json", "new_wiki": "new_wiki_v1.0.json", "nyt": "nyt_v1.0.json",
               "reddit": "reddit_v1.0.json", "amazon": "amazon_reviews_v1.0.json"}
SQUAD_SOURCES = {"squad_shifts": ("wiki", "new_wiki"), "squad_shifts_web": ("reddit", "amazon")}  # by licence
NYT_LICENCE = "CC BY 4.0 annotations over New York Times articles (evaluation only, never redistributed)"
GEM_TASKS = ("xsum", "wikilingua_en", "wikilingua_multilingual", "mlsum_de", "mlsum_es")
BIGBENCH_TASKS = ("squad_shifts", "vitaminc_fact_verification", "gem", "multiemo", "disfl_qa", "paragraph_segmentation")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\ufffd", " ")).strip()


def _load_task(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if "examples" not in data:
        raise ValueError(f"{path}: no 'examples' list (not a BIG-bench task.json)")
    return data["examples"]


def squad_shifts(tasks: Path, domain: str) -> Iterator[Pair]:
    check_squad_domain(domain)
    path = tasks / "squad_shifts" / SQUAD_FILES[domain]
    data = json.loads(path.read_text(encoding="utf-8"))
    for article in data["data"]:
        for para in article["paragraphs"]:
            ctx = _clean(para["context"])
            for qa in para["qas"]:
                if qa["question"].strip() and ctx:
                    yield Pair(_clean(qa["question"]), ctx, source=f"squad_shifts/{domain}")


def vitaminc(tasks: Path) -> Iterator[Pair]:
    by_claim: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"True": [], "False": []})
    for ex in _load_task(tasks / "vitaminc_fact_verification" / "task.json"):
        evidence, sep, claim = ex["input"].rpartition("\nClaim: ")
        label = max(ex["target_scores"], key=ex["target_scores"].get)
        if sep and label in ("True", "False"):
            ev = _clean(evidence)
            if ev not in by_claim[_clean(claim)][label]:
                by_claim[_clean(claim)][label].append(ev)
    for claim, ev in by_claim.items():
        for pos in ev["True"]:
            yield Pair(claim, pos, negs=tuple(n for n in ev["False"] if n != pos), source="vitaminc")


def gem(tasks: Path) -> Iterator[Pair]:
    for name in GEM_TASKS:
        path = tasks / "gem" / name / "task.json"
        if not path.is_file():
            log.warning("%s: missing, skipped", path)
            continue
        for ex in _load_task(path):
            target = ex["target"][0] if isinstance(ex["target"], list) else ex["target"]
            if target.strip() and ex["input"].strip():
                yield Pair(_clean(target), _clean(ex["input"]), source="gem")


def _label(ex: dict) -> str:
    return max(ex["target_scores"], key=ex["target_scores"].get)


def align_by_label(english: list[dict], other: list[dict]) -> list[tuple[int, int]]:
    """Index pairs (en, other) of the same review. The files are aligned by index, except that a file may hold
    an extra review (Polish has one): walk both, skipping an item of ``other`` whose sentiment label disagrees."""
    pairs, i, j = [], 0, 0
    while i < len(english) and j < len(other):
        if _label(english[i]) == _label(other[j]):
            pairs.append((i, j))
            i += 1
        j += 1
    return pairs


def multiemo(tasks: Path) -> Iterator[Pair]:
    root = tasks / "multiemo"
    english = _load_task(root / "all_text_en" / "task.json")
    for folder in sorted(root.glob("all_text_*")):
        lang = folder.name.rsplit("_", 1)[-1]
        if lang == "en":
            continue
        other = _load_task(folder / "task.json")
        pairs = align_by_label(english, other)
        if len(pairs) < 0.95 * len(english):
            raise ValueError(f"{folder}: only {len(pairs)} of {len(english)} reviews align with English")
        if len(pairs) != len(english) or len(other) != len(english):
            log.info("multiemo %s: %d reviews, %d aligned with English (%d)", lang, len(other), len(pairs),
                     len(english))
        for i, j in pairs:
            text, en = _clean(other[j]["input"]), _clean(english[i]["input"])
            if text and en:
                yield Pair(text, en, source="multiemo", task="symmetric")


def disfl_qa(tasks: Path) -> Iterator[Pair]:
    for ex in _load_task(tasks / "disfl_qa" / "task.json"):
        question, sep, context = ex["input"].partition("\ncontext:")
        if sep and question.strip() and context.strip():
            yield Pair(_clean(question), _clean(context), source="disfl_qa")


def paragraph(tasks: Path) -> Iterator[Pair]:
    for ex in _load_task(tasks / "paragraph_segmentation" / "task.json"):
        sentences = [s.strip() for s in ex["input"].strip().split("\n")]
        labels = ex["target"].split()
        if len(labels) != len(sentences):
            continue
        current: list[str] = []
        for sent, end in zip(sentences, labels, strict=True):
            current.append(sent)
            if end == "1":
                if len(current) >= 2 and len(current[0]) >= 25 and len(current[0].split()) >= 4:
                    yield Pair(_clean(current[0]), _clean(" ".join(current[1:])), source="paragraph", task="symmetric")
                current = []


def chatterbot(corpus_dir: Path) -> Iterator[Pair]:
    import yaml

    for path in sorted(corpus_dir.glob("*/*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            log.warning("%s: unreadable YAML, skipped (%s)", path, exc)
            continue
        for conv in (data or {}).get("conversations") or []:
            if not isinstance(conv, list) or len(conv) < 2:
                continue
            q = str(conv[0]).strip()
            for answer in conv[1:]:
                a = str(answer).strip()
                if q and a:
                    yield Pair(_clean(q), _clean(a), source="chatterbot")


def wordnet(dict_dir: Path) -> Iterator[Pair]:
    """``data.{noun,verb,adj,adv}`` lines: ``offset lex ss_type w_cnt (word lex_id)* ... | gloss``."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = dict_dir / f"data.{pos}"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the WordNet dictionary folder")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # licence header
                head, gloss = line.split(" | ", 1)
                fields = head.split()
                n_words = int(fields[3], 16)
                words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(n_words)]
                gloss = _clean(gloss)
                if gloss:
                    yield Pair(", ".join(words), gloss, source="wordnet")


_PO_LINE = re.compile(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")\s*$')
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]|\{(\w*)\}|%[sdifr]")
L10N_MIN_CHARS = 3


def po_entries(text: str) -> Iterator[tuple[str, str]]:
    """(msgid, msgstr) of a gettext catalogue: the singular form, translated, not fuzzy; the header and obsolete
    (``#~``) entries are skipped."""
    entry: dict[str, str] = {}
    fuzzy, key = False, None
    for line in [*text.splitlines(), ""]:
        s = line.strip()
        m = _PO_LINE.match(s)
        if "msgstr" in entry and (not s or s.startswith("#") or (m and m.group(1) in ("msgctxt", "msgid"))):
            if entry.get("msgid") and entry["msgstr"] and not fuzzy:  # the previous entry is complete
                yield entry["msgid"], entry["msgstr"]
            entry, fuzzy, key = {}, False, None
        if s.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in s
        elif m:
            field = m.group(1)
            key = "msgstr" if field in ("msgstr", "msgstr[0]") else field if field in ("msgctxt", "msgid") else None
            if key:
                entry[key] = ast.literal_eval(m.group(2))
        elif s.startswith('"') and key:
            entry[key] += ast.literal_eval(s)


def _ui_text(text: str) -> str:
    """A catalogue string as plain text: markup dropped, ``%(name)s`` / ``{name}`` -> the name, ``%s`` -> ``…``."""
    text = re.sub(r"<[^>]+>", "", text)
    text = _PLACEHOLDER.sub(lambda m: (m.group(1) or m.group(2) or "…").replace("_", " "), text)
    return _clean(text)


def django_l10n(wheel: Path, languages: tuple[str, ...] = ()) -> dict[str, list[Pair]]:
    """{locale: [Pair(translation, English original)]} from the message catalogues of a Django wheel (English
    locales skipped; ``languages`` () = every other locale; an unknown one is an error naming those there are)."""
    by_lang: dict[str, list[Pair]] = defaultdict(list)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if re.search(r"/locale/[^/]+/LC_MESSAGES/[^/]+\.po$", n)]
        found = sorted({n.split("/locale/")[1].split("/")[0] for n in names} - {"en"})
        found = [lang for lang in found if not lang.startswith("en_")]
        unknown = sorted(set(languages) - set(found))
        if unknown:
            raise ValueError(f"{wheel.name}: no catalogues for locales {unknown}; it has {found}")
        wanted = set(languages or found)
        for name in sorted(names):
            lang = name.split("/locale/")[1].split("/")[0]
            if lang not in wanted:
                continue
            for msgid, msgstr in po_entries(zf.read(name).decode("utf-8", errors="replace")):
                en, tr = _ui_text(msgid), _ui_text(msgstr)
                if len(en) >= L10N_MIN_CHARS and tr and en != tr and re.search(r"\w", en):
                    by_lang[lang].append(Pair(tr, en, source=f"django_l10n/{lang}", task="symmetric"))
    return {lang: by_lang[lang] for lang in sorted(by_lang)}


def squad_eval_beir(tasks: Path, out: Path) -> Path:
    """The held-out squad_shifts domain as a BEIR folder (evaluation only): paragraphs are the corpus."""
    path = tasks / "squad_shifts" / SQUAD_FILES[HELD_OUT_SQUAD_DOMAIN]
    data = json.loads(path.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    docs: dict[str, str] = {}
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fq, \
            open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for article in data["data"]:
            for para in article["paragraphs"]:
                ctx = _clean(para["context"])
                did = docs.setdefault(ctx, f"d{len(docs)}")
                for qa in para["qas"]:
                    fq.write(json.dumps({"_id": qa["id"], "text": _clean(qa["question"])}, ensure_ascii=False) + "\n")
                    fr.write(f"{qa['id']}\t{did}\t1\n")
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fc:
        for text, did in docs.items():
            fc.write(json.dumps({"_id": did, "title": "", "text": text}, ensure_ascii=False) + "\n")
    write_marker(out, f"squad_shifts-{HELD_OUT_SQUAD_DOMAIN}", f"{BIGBENCH}: squad_shifts/{path.name}", NYT_LICENCE)
    return out
