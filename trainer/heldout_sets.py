"""Held-out evaluation collections built here in the BEIR layout: ``python -m trainer heldout-build NAME``.

``techfaq`` (evaluation only; `trainer.heldout` refuses it for training, filtering and mining):
  queries = the questions of two FAQs, corpus = their answers (one judged answer per question, the question
  itself is not part of the document), qrels/test.tsv. FAQ retrieval: find the answer to a user's question.
  * the Python 3.11 FAQ (``Doc/faq/*.rst`` as shipped in ``python3.11-doc``): PSF License 2.0, (c) Python
    Software Foundation.
  * the Debian GNU/Linux FAQ 11 (``debian-faq``, ``debian-faq.en.txt.gz``): (c) Software in the Public Interest,
    verbatim and modified copies permitted with the notice (see the package's copyright file).
  Both come from Debian's archive with ``apt-get download`` (no install needed), into ``data/``: they are
  software documentation, a domain none of the training sources covers.

``squad_shifts-nyt``: the held-out SQuADShifts domain (New York Times) from the bigbench sdist, paragraphs as
the corpus (`trainer.sources.squad_eval_beir`).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import subprocess
import tempfile
from pathlib import Path

from .heldout import write_marker

log = logging.getLogger(__name__)

TECHFAQ = "techfaq"
PY_DOC_PACKAGE = "python3.11-doc"
PY_FAQ_DIR = "usr/share/doc/python3.11/html/_sources/faq"
DEBIAN_FAQ_PACKAGE = "debian-faq"
DEBIAN_FAQ_FILE = "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
TECHFAQ_ORIGIN = (f"Debian packages {PY_DOC_PACKAGE} ({PY_FAQ_DIR}/*.rst.txt) and {DEBIAN_FAQ_PACKAGE} "
                  f"({DEBIAN_FAQ_FILE}), via apt-get download")
TECHFAQ_LICENCE = ("Python FAQ: PSF License 2.0; Debian FAQ: (c) Software in the Public Interest, copies permitted "
                   "with the notice (evaluation only, never redistributed)")
MIN_ANSWER_CHARS = 40
HEADING_UNDERLINE = re.compile(r"^([=\-~^*#\"'+`])\1{2,}\s*$")


def clean_rst(text: str) -> str:
    """Plain text of an RST answer: roles, links and literals unwrapped, directive and label lines dropped."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(".. ") or s == "::":  # directives, comments, labels (their indented bodies stay: code)
            continue
        lines.append(line)
    t = "\n".join(lines)
    t = re.sub(r":[\w:.+-]+:`~?([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", t)  # :func:`name` / :ref:`text <target>`
    t = re.sub(r"`([^`<]+?)\s*<[^>]+>`__?", r"\1", t)  # `text <url>`_
    t = re.sub(r"``(.+?)``", r"\1", t)
    t = re.sub(r"`([^`]+)`_?", r"\1", t)
    t = t.replace("::", ":")
    return re.sub(r"\s+", " ", t).strip()


def rst_questions(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of an RST FAQ: a heading ending in '?' and the text up to the next heading."""
    lines = text.splitlines()
    heads = [i for i in range(len(lines) - 1)
             if lines[i].strip() and HEADING_UNDERLINE.match(lines[i + 1])
             and len(lines[i + 1].strip()) >= len(lines[i].strip()) and not HEADING_UNDERLINE.match(lines[i])]
    out = []
    for n, i in enumerate(heads):
        title = re.sub(r"\s+", " ", lines[i]).strip()
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        if title.endswith("?"):
            answer = clean_rst("\n".join(lines[i + 2:end]))
            out.append((clean_rst(title), answer))
    return out


def debian_questions(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of the Debian FAQ's text rendering: a ``N.M. Question?`` (or ``N.M.K.``) heading
    at column 0 (it may wrap over several lines, up to a blank line) and the text up to the next heading."""
    text = text.replace("\u00a0", " ")
    lines = text.splitlines()
    heading = re.compile(r"^\d+(?:\.\d+)+\. (\S.*)$")  # 1.2. and 3.1.4. (sub-questions)
    starts = [i for i, line in enumerate(lines) if heading.match(line)]
    out = []
    for n, i in enumerate(starts):
        j, title = i, [heading.match(lines[i]).group(1)]
        while j + 1 < len(lines) and lines[j + 1].strip() and not lines[j + 1].startswith(" "):
            j += 1
            title.append(lines[j].strip())
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        body = "\n".join(line for line in lines[j + 1:end] if not re.match(r"^\d+\. \S", line))  # chapter titles
        body = re.sub(r"\s+", " ", body)
        body = re.sub(r"\(\s*https?:\s*/[^)]*\)", "", body)  # the text rendering repeats each URL in parentheses
        body = re.sub(r"\s+", " ", body).strip()
        question = " ".join(title)
        if "?" in question:  # "Feedback", "Authors", ... are sections, not questions
            out.append((question, body))
    return out


def write_beir_qa(out: Path, pairs: list[tuple[str, str, str]], name: str, origin: str, licence: str) -> dict:
    """Write (id, question, answer) triples as a BEIR folder (one judged document per query) + held-out marker."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "qrels").mkdir(exist_ok=True)
    seen_q: set[str] = set()
    n = 0
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fc, \
            open(out / "queries.jsonl", "w", encoding="utf-8") as fq, \
            open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for qid, question, answer in pairs:
            key = question.lower()
            if len(answer) < MIN_ANSWER_CHARS or key in seen_q:
                continue
            seen_q.add(key)
            fc.write(json.dumps({"_id": f"d-{qid}", "title": "", "text": answer}, ensure_ascii=False) + "\n")
            fq.write(json.dumps({"_id": f"q-{qid}", "text": question}, ensure_ascii=False) + "\n")
            fr.write(f"q-{qid}\td-{qid}\t1\n")
            n += 1
    write_marker(out, name, origin, licence)
    info = {"name": name, "queries": n, "docs": n, "origin": origin, "licence": licence}
    (out / "README.md").write_text(f"# {name} (held out: evaluation only)\n\n{n} queries, {n} documents.\n\n"
                                   f"Origin: {origin}.\n\nLicence: {licence}.\n\nBuilt by `python -m trainer "
                                   f"heldout-build {name}` (trainer/heldout_sets.py).\n")
    return info


def apt_unpack(packages: tuple[str, ...], dest: Path) -> Path:
    """``apt-get download`` the packages and unpack them (``dpkg-deb -x``) into ``dest``; no install, no root."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["apt-get", "download", *packages], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("*.deb"))
        if len(debs) != len(packages):
            raise RuntimeError(f"apt-get download {' '.join(packages)} failed: {proc.stderr.strip()[-400:]} "
                               "(run `apt-get update` first)")
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, capture_output=True)
            log.info("unpacked %s", deb.name)
    return dest


def techfaq_pairs(root: Path) -> list[tuple[str, str, str]]:
    """(id, question, answer) of both FAQs under an unpacked package root (``usr/share/...`` inside)."""
    faq_dir = root / PY_FAQ_DIR
    deb_faq = root / DEBIAN_FAQ_FILE
    if not faq_dir.is_dir() or not deb_faq.is_file():
        raise FileNotFoundError(f"{root}: needs {PY_FAQ_DIR}/ and {DEBIAN_FAQ_FILE} (unpacked {PY_DOC_PACKAGE} and "
                                f"{DEBIAN_FAQ_PACKAGE})")
    pairs = []
    for path in sorted(faq_dir.glob("*.rst.txt")):
        stem = path.name.removesuffix(".rst.txt")
        for n, (q, a) in enumerate(rst_questions(path.read_text(encoding="utf-8"))):
            pairs.append((f"py-{stem}-{n}", q, a))
    text = gzip.decompress(deb_faq.read_bytes()).decode("utf-8", errors="replace")
    for n, (q, a) in enumerate(debian_questions(text)):
        pairs.append((f"deb-{n}", q, a))
    return pairs


def build_techfaq(out: Path, unpacked: Path | None = None) -> dict:
    """The techfaq collection into ``out`` (``unpacked``: an already unpacked package root, else apt-get)."""
    if unpacked is None:
        with tempfile.TemporaryDirectory() as tmp:
            root = apt_unpack((PY_DOC_PACKAGE, DEBIAN_FAQ_PACKAGE), Path(tmp))
            return write_beir_qa(out, techfaq_pairs(root), TECHFAQ, TECHFAQ_ORIGIN, TECHFAQ_LICENCE)
    return write_beir_qa(out, techfaq_pairs(unpacked), TECHFAQ, TECHFAQ_ORIGIN, TECHFAQ_LICENCE)

