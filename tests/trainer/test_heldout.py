"""Held-out rules (SciFact whole, marked folders, decontamination of documents) and the techfaq builder's parsers
on small FAQ texts written here (the real build needs apt: marked slow)."""

import gzip
import json
import shutil
from pathlib import Path

import pytest
from trainer_helpers import synthetic_pairs, write_beir

from trainer.build import finalise
from trainer.config import MineConfig
from trainer.data import Pair, read_training
from trainer.heldout import Decontaminator, HeldOutError, check_beir, check_source
from trainer.heldout_sets import (
    DEBIAN_FAQ_FILE,
    PY_FAQ_DIR,
    build_techfaq,
    clean_rst,
    debian_questions,
    rst_questions,
    techfaq_pairs,
)
from trainer.mining import corpus_docs, mine

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir"

RST = """\
===============
Programming FAQ
===============

.. contents::

General Questions
=================

Is there a debugger with breakpoints?
-------------------------------------

Yes. The :mod:`pdb` module is a simple debugger, see `the docs <https://example.org>`_.
Use ``python -m pdb``.

.. _faq-label:

How do I make a binary?
-----------------------

You need a freezing tool such as :ref:`freeze <freeze-tool>` to bundle the interpreter with your program.

Why?
----

Short.

Notes
-----

Not a question, and so not a query.
"""

DEB = """\
Table of Contents

    1.1. What is this FAQ?

1. Definitions

1.1.\u00a0What is this FAQ?

    This document answers questions frequently asked about Debian, see
    https://www.debian.org (https://
    www.debian.org) for more.

1.2.\u00a0How does one pronounce Debian and what does this
word mean?

    The name is pronounced Deb'-ee-en, after Debra and Ian.

3.1.1.\u00a0Could you tell me whether to install stable, testing or
unstable?

    That is a matter of taste; stable is the safe choice for servers.

9.1.\u00a0Feedback

    Comments are welcome at the list.
"""


def test_rst_faq_questions_and_clean_answers():
    got = rst_questions(RST)
    assert [q for q, _ in got] == ["Is there a debugger with breakpoints?", "How do I make a binary?", "Why?"]
    assert got[0][1] == "Yes. The pdb module is a simple debugger, see the docs. Use python -m pdb."
    assert got[1][1].startswith("You need a freezing tool such as freeze to bundle") and "faq-label" not in got[1][1]
    assert clean_rst(":func:`~os.path.join` and :class:`dict`") == "os.path.join and dict"


def test_debian_faq_questions_wrap_and_urls_are_not_repeated():
    got = debian_questions(DEB)
    assert [q for q, _ in got] == ["What is this FAQ?",
                                   "How does one pronounce Debian and what does this word mean?",
                                   "Could you tell me whether to install stable, testing or unstable?"]
    assert got[0][1] == ("This document answers questions frequently asked about Debian, see https://www.debian.org "
                         "for more.")
    assert got[2][1].startswith("That is a matter of taste")


def fake_packages(root: Path) -> Path:
    (root / PY_FAQ_DIR).mkdir(parents=True)
    (root / PY_FAQ_DIR / "programming.rst.txt").write_text(RST)
    (root / DEBIAN_FAQ_FILE).parent.mkdir(parents=True)
    (root / DEBIAN_FAQ_FILE).write_bytes(gzip.compress(DEB.encode()))
    return root


def test_techfaq_folder_is_beir_marked_and_refused_for_training(tmp_path):
    root = fake_packages(tmp_path / "pkgs")
    assert len(techfaq_pairs(root)) == 6
    out = tmp_path / "renamed-copy-of-techfaq"
    info = build_techfaq(out, unpacked=root)
    assert info["queries"] == 5  # "Why?" -> "Short." is under the minimum answer length
    queries = [json.loads(x) for x in (out / "queries.jsonl").read_text().splitlines()]
    corpus = {json.loads(x)["_id"]: json.loads(x) for x in (out / "corpus.jsonl").read_text().splitlines()}
    qrels = (out / "qrels" / "test.tsv").read_text().splitlines()
    assert len(qrels) == 6 and all(corpus[line.split("\t")[1]]["text"] for line in qrels[1:])
    assert all(q["text"] not in corpus[f"d-{q['_id'][2:]}"]["text"] for q in queries)  # the answer only
    for split in ("test", "train"):
        with pytest.raises(HeldOutError, match="marked held out"):
            check_beir(out, split)
    with pytest.raises(HeldOutError):
        read_training([f"{out}:test"])
    with pytest.raises(HeldOutError):
        corpus_docs(f"x={out}")
    with pytest.raises(HeldOutError):
        check_source("techfaq/test")
    dec = Decontaminator.from_files(None, None, (out,))
    assert dec.is_held_out(queries[0]["text"].upper()) and dec.is_held_out(next(iter(corpus.values()))["text"])


def test_scifact_is_held_out_whole_train_split_and_corpus_included(tmp_path):
    folder = write_beir(tmp_path / "scifact", synthetic_pairs(3), split="train")
    with pytest.raises(HeldOutError, match="every split of scifact"):
        read_training([f"{folder}:train"])
    with pytest.raises(HeldOutError):
        mine(synthetic_pairs(4, sources=("s",)), None, MineConfig(), (f"s={folder}",), progress=False)
    with pytest.raises(HeldOutError):
        check_source("scifact/train")
    if (SHARED / "scifact" / "qrels" / "train.tsv").is_file():  # a renamed copy is caught by its files' hashes
        copy = tmp_path / "renamed"
        shutil.copytree(SHARED / "scifact", copy)
        with pytest.raises(HeldOutError, match="identical to the held-out scifact"):
            check_beir(copy, "train")


def test_finalise_drops_records_whose_positive_is_a_held_out_document():
    dec = Decontaminator()
    dec.add(["The held-out abstract, word for word."])
    recs = [Pair("a fresh question", "the held out abstract word for word"), Pair("q", "a training document")]
    kept, stats = finalise(recs, dec, 0, 0, "t")
    assert [r.pos for r in kept] == ["a training document"] and stats["decontaminated"] == 1


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="shared BEIR data not on this machine")
def test_decontaminator_holds_all_scifact_queries_and_documents():
    dec = Decontaminator.from_files(SHARED, None)
    queries = [json.loads(x) for x in (SHARED / "scifact" / "queries.jsonl").read_text().splitlines()]
    doc = json.loads((SHARED / "scifact" / "corpus.jsonl").read_text().splitlines()[7])
    assert all(dec.is_held_out(q["text"]) for q in queries[:50])  # train queries too
    assert dec.is_held_out(doc["text"]) and dec.is_held_out(f"{doc['title']} {doc['text']}")


@pytest.mark.slow
def test_techfaq_builds_from_the_debian_packages(tmp_path):
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get")
    try:
        info = build_techfaq(tmp_path / "techfaq")
    except RuntimeError as exc:
        pytest.skip(f"apt-get download unavailable: {exc}")
    assert info["queries"] > 250


# ---------------------------------------------------------------- XQuAD (generated stand-ins, never the real data)

XQ_PARAS = ["The Panthers' defence gave up just 308 points, ranking sixth in the league, while also leading it in "
            "interceptions with 24 and boasting four selections to the annual all-star game.",
            "Normandy lies on the northern coast of France; its name comes from the Norsemen who settled there in "
            "the tenth century and swore fealty to the king of West Francia.",
            "Café culture in the old harbour town grew around the “Grand Marché”, where merchants met every "
            "morning to trade cloth, salt and news from the ships anchored in the bay."]
XQ_QUESTIONS = ["How many points did the Panthers' defence give up?", "Where does Normandy's name come from?",
                "Where did the merchants meet every morning?"]
XQ_DE = ["Die Verteidigung der Panthers ließ nur 308 Punkte zu und belegte damit den sechsten Platz der Liga.",
         "Wie viele Punkte ließ die Verteidigung der Panthers zu?"]


def write_xquad(folder: Path, paras: list[str], questions: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"p{i}", "title": "", "text": t},
                                                            ensure_ascii=False) + "\n" for i, t in enumerate(paras)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t}, ensure_ascii=False) + "\n"
                                                  for i, t in enumerate(questions)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\tp{min(i, len(paras) - 1)}\t1\n" for i in range(len(questions))))
    return folder


def squad_file(tasks: Path, paragraphs: list[tuple[str, list[str]]]) -> None:
    """A squad_shifts-like ``squaddev_v1.1.json`` (SQuAD layout) under ``tasks/squad_shifts``."""
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": ctx, "qas": [{"id": f"{n}-{k}", "question": q, "answers": []} for k, q in enumerate(qs)]}
        for n, (ctx, qs) in enumerate(paragraphs)]}]}
    (tasks / "squad_shifts").mkdir(parents=True)
    (tasks / "squad_shifts" / "squaddev_v1.1.json").write_text(json.dumps(data, ensure_ascii=False))


def test_normalise_folds_unicode_forms_quotes_and_invisible_characters():
    from trainer.heldout import normalise

    assert normalise("Café  “Grand\u00a0Marché”\n") == normalise("cafe\u0301 \"grand marche\u0301\"") == \
        "café grand marché"
    assert normalise("ﬁne Ｆｕｌｌ wi\u00addth zero\u200bwidth") == "fine full width zerowidth"
    assert normalise("The Panthers’ defence") == normalise("the panthers' DEFENCE")


def test_decontamination_drops_squad_records_of_xquad_paragraphs_and_questions_in_any_language(tmp_path):
    from trainer import sources

    root = tmp_path / "beir"
    write_xquad(root / "xquad-en", XQ_PARAS, XQ_QUESTIONS)
    write_xquad(root / "xquad-de", XQ_DE[:1], XQ_DE[1:])
    tasks = tmp_path / "tasks"
    fresh = "An unrelated paragraph about glaciers, which move slowly downhill under their own weight."
    squad_file(tasks, [
        (XQ_PARAS[0].replace("’", "'").replace(" ", "  "), [XQ_QUESTIONS[0], "A new question on the same text?"]),
        (XQ_PARAS[1].replace("'", "\u2019").upper() + "\n", ["Who settled there?"]),  # case, quotes, newline
        ("An introduction sentence. " + XQ_PARAS[2].replace("é", "e\u0301"), ["Why did the town grow?"]),  # inside
        (fresh, ["How do glaciers move?", XQ_QUESTIONS[1]]),  # a held-out question over a fresh paragraph
    ])
    records = list(sources.squad_shifts(tasks, "wiki"))
    assert len(records) == 6
    other = [Pair(XQ_DE[1].lower(), "eine Antwort"), Pair("Frage", XQ_DE[0]), Pair("q", "a training document")]
    dec = Decontaminator.from_files(root, None)
    kept, stats = finalise(records + other, dec, 0, 0, "squad_shifts-wiki")
    assert sorted((r.query, r.pos) for r in kept) == [("How do glaciers move?", fresh), ("q", "a training document")]
    assert stats["decontaminated"] == 7


def test_xquad_folders_are_refused_by_name_and_by_hash(tmp_path):
    for name in ("xquad-en", "xquad-zh", "XQuAD-th", "xquad"):
        folder = write_xquad(tmp_path / name, XQ_PARAS, XQ_QUESTIONS)
        for split in ("test", "train"):
            with pytest.raises(HeldOutError, match="held out"):
                check_beir(folder, split)
        with pytest.raises(HeldOutError):
            read_training([f"{folder}:test"])
        with pytest.raises(HeldOutError):
            corpus_docs(f"s={folder}")
    with pytest.raises(HeldOutError):
        check_source("xquad-de/test")
    check_beir(write_xquad(tmp_path / "squad-like", XQ_PARAS, XQ_QUESTIONS), "test")  # another name: allowed
    for lang in ("en", "de", "es", "zh", "ar", "hi", "ru"):
        if (SHARED / f"xquad-{lang}" / "corpus.jsonl").is_file():  # a renamed copy is caught by its files' hashes
            copy = tmp_path / f"renamed-{lang}"
            shutil.copytree(SHARED / f"xquad-{lang}", copy)
            with pytest.raises(HeldOutError, match="identical to the held-out xquad"):
                check_beir(copy, "test")
            (copy / "qrels" / "test.tsv").unlink()  # the queries and the corpus alone are enough
            with pytest.raises(HeldOutError, match=f"identical to the held-out xquad-{lang}"):
                check_beir(copy, "train")


@pytest.mark.skipif(not (SHARED / "xquad-en").is_dir(), reason="shared BEIR data not on this machine")
def test_decontaminator_holds_every_xquad_paragraph_and_question_of_the_shared_folders():
    dec = Decontaminator.from_files(SHARED, None)
    for lang in ("en", "de", "zh", "ar"):
        paras = [json.loads(x)["text"] for x in (SHARED / f"xquad-{lang}" / "corpus.jsonl").read_text().splitlines()]
        qs = [json.loads(x)["text"] for x in (SHARED / f"xquad-{lang}" / "queries.jsonl").read_text().splitlines()]
        assert len(paras) == 240 and all(dec.is_held_out(" ".join(p.split()) + " ") for p in paras)
        assert all(dec.is_held_out(q) for q in qs)
