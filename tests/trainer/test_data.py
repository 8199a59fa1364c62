"""Readers, held-out rules, source parsers and the data build (on small files made here)."""

import json
import shutil
from pathlib import Path

import pytest
from trainer_helpers import synthetic_pairs, write_beir

from trainer import sources
from trainer.build import build_data, finalise
from trainer.config import DataConfig
from trainer.data import Pair, ReadReport, load_beir, read_beir_pairs, read_jsonl, read_training, write_jsonl
from trainer.heldout import Decontaminator, HeldOutError, check_beir, check_source

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir"


def test_jsonl_reader_accepts_common_spellings_and_reports_bad_lines(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join([
        json.dumps({"query": "q1", "pos": "p1", "negs": ["n1", "n2"]}),
        json.dumps({"anchor": "q2", "positive": "p2", "negative": "n3"}),
        json.dumps({"question": "q3", "answer": "p3", "source": "faq", "task": "retrieval"}),
        "{not json",
        json.dumps({"query": "q4"}),
        json.dumps({"query": "q5", "pos": "p5", "task": "bogus"}),
        "",
    ]))
    report = ReadReport()
    recs = read_jsonl(f, report)
    assert [r.query for r in recs] == ["q1", "q2", "q3"]
    assert recs[0].negs == ("n1", "n2") and recs[1].negs == ("n3",)
    assert recs[0].source == "mine" and recs[2].source == "faq"
    assert len(report.errors) == 3
    assert report.errors[0].startswith(f"{f}:4:")
    assert f"{f}:5:" in report.errors[1] and "needs a query" in report.errors[1]
    assert "task must be one of" in report.errors[2]


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    good = tmp_path / "good.jsonl"
    write_jsonl(good, synthetic_pairs(5))
    (tmp_path / "bad.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    report = ReadReport()
    recs = read_training([str(tmp_path / "bad.jsonl"), str(good), str(tmp_path / "missing.jsonl")], report)
    assert len(recs) == 5
    assert any("bad.jsonl" in e and "UTF-8" in e for e in report.errors)
    assert any("missing.jsonl" in e for e in report.errors)
    with pytest.raises(ValueError, match="no training records"):
        read_training([str(tmp_path / "missing.jsonl")])


def test_beir_reader_and_split_spec(tmp_path):
    folder = write_beir(tmp_path / "mycoll", synthetic_pairs(4), split="train")
    recs = read_training([f"{folder}:train"])
    assert len(recs) == 4 and recs[0].source == "mycoll/train"
    corpus, queries, qrels = load_beir(folder, "train")
    assert len(corpus) == 4 and qrels["q0"] == {"d0": 1}
    with pytest.raises(FileNotFoundError, match="qrels"):
        load_beir(folder, "test")


def test_held_out_collections_are_refused_by_name_and_by_content(tmp_path):
    for name, split in (("scifact", "test"), ("cranfield", "test"), ("cranfield", "train")):
        folder = write_beir(tmp_path / name, synthetic_pairs(3), split=split)
        with pytest.raises(HeldOutError, match="held out"):
            read_beir_pairs(folder, split)
        with pytest.raises(HeldOutError):
            read_training([f"{folder}:{split}"])
    with pytest.raises(HeldOutError, match="held out"):  # all of SciFact, train split included, is held out
        check_beir(write_beir(tmp_path / "scifact2" / "scifact", synthetic_pairs(3), split="train"), "train")
    check_beir(write_beir(tmp_path / "mine" / "mycoll", synthetic_pairs(3), split="train"), "train")  # allowed
    if (SHARED / "cranfield" / "qrels" / "test.tsv").is_file():  # a renamed copy is caught by its hash
        copy = tmp_path / "renamed"
        shutil.copytree(SHARED / "cranfield", copy)
        with pytest.raises(HeldOutError, match="identical to the held-out"):
            check_beir(copy, "test")


def test_held_out_sources_and_decontamination(tmp_path):
    with pytest.raises(HeldOutError):
        check_source("squad_shifts/nyt")
    check_source("squad_shifts/reddit")
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"query": "q", "pos": "p", "source": "squad_shifts/nyt"}) + "\n")
    with pytest.raises(HeldOutError):
        read_training([str(f)])
    dec = Decontaminator()
    dec.add(["What is the Capital of France?"])
    recs = [Pair("what is the capital of france", "Paris"), Pair("other", "doc"), Pair("other", "doc")]
    kept, stats = finalise(recs, dec, 0, 0, "t")
    assert [r.query for r in kept] == ["other"] and stats == {"parsed": 1, "written": 1, "decontaminated": 1}


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="shared BEIR data not on this machine")
def test_decontaminator_reads_the_shared_held_out_queries():
    dec = Decontaminator.from_files(SHARED, None)
    test_query = json.loads((SHARED / "scifact" / "queries.jsonl").read_text().splitlines()[0])  # id 0 is train
    first_test = (SHARED / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[1].split("\t")[0]
    qtext = {json.loads(x)["_id"]: json.loads(x)["text"]
             for x in (SHARED / "scifact" / "queries.jsonl").read_text().splitlines()}
    assert dec.is_held_out(qtext[first_test])
    assert len(dec.digests) > 300 and test_query["_id"] == "0"


def task_file(root: Path, rel: str, examples: list) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"examples": examples}))


def test_source_parsers_on_small_files(tmp_path):
    t = tmp_path / "tasks"
    task_file(t, "vitaminc_fact_verification/task.json", [
        {"input": "A: ev one .\nClaim: c1", "target_scores": {"True": 1, "False": 0, "Neither": 0}},
        {"input": "A: ev two .\nClaim: c1", "target_scores": {"True": 0, "False": 1, "Neither": 0}},
        {"input": "A: ev three .\nClaim: c2", "target_scores": {"True": 0, "False": 0, "Neither": 1}}])
    assert list(sources.vitaminc(t)) == [Pair("c1", "A: ev one .", negs=("A: ev two .",), source="vitaminc")]
    lab = [{"positive": 1, "negative": 0}, {"positive": 0, "negative": 1}, {"positive": 1, "negative": 0}]
    en = [{"input": f"en {i}", "target_scores": lab[i]} for i in range(3)]
    pl = [en[0] | {"input": "pl 0"}, {"input": "extra", "target_scores": lab[0]}, en[1] | {"input": "pl 1"},
          en[2] | {"input": "pl 2"}]
    task_file(t, "multiemo/all_text_en/task.json", en)
    task_file(t, "multiemo/all_text_pl/task.json", pl)
    assert [(p.query, p.pos) for p in sources.multiemo(t)] == [("pl 0", "en 0"), ("pl 1", "en 1"), ("pl 2", "en 2")]
    task_file(t, "paragraph_segmentation/task.json",
              [{"input": "The first sentence is here.\nSecond.\nAm 31.\nFourth.\nThe third paragraph starts "
                         "now.\nFifth.\n", "target": "0 1 0 1 0 1"}])
    assert [(p.query, p.pos) for p in sources.paragraph(t)] == [("The first sentence is here.", "Second."),
                                                                 ("The third paragraph starts now.", "Fifth.")]
    task_file(t, "disfl_qa/task.json", [{"input": "Who um what is it ?  \ncontext: The text .", "target": "x"}])
    assert [(p.query, p.pos) for p in sources.disfl_qa(t)] == [("Who um what is it ?", "The text .")]
    wn = tmp_path / "wn"
    wn.mkdir()
    (wn / "data.noun").write_text("  1 licence header line\n00001740 03 n 02 entity 0 thing(a) 0 000 | that which "
                                  "exists; \"an example\"  \n")
    for pos in ("verb", "adj", "adv"):
        (wn / f"data.{pos}").write_text("")
    assert list(sources.wordnet(wn)) == [Pair("entity, thing", "that which exists; \"an example\"", source="wordnet")]
    squad = t / "squad_shifts"
    squad.mkdir()
    data = {"data": [{"paragraphs": [{"context": "ctx  one", "qas": [{"id": "a", "question": "q?"}]}]}]}
    (squad / "reddit_v1.0.json").write_text(json.dumps(data))
    (squad / "nyt_v1.0.json").write_text(json.dumps(data))
    assert list(sources.squad_shifts(t, "reddit")) == [Pair("q?", "ctx one", source="squad_shifts/reddit")]
    with pytest.raises(HeldOutError):
        list(sources.squad_shifts(t, "nyt"))
    out = sources.squad_eval_beir(t, tmp_path / "eval")
    corpus, queries, qrels = load_beir(out, "test")
    assert queries == {"a": "q?"} and qrels == {"a": {"d0": 1}} and corpus["d0"]["text"] == "ctx one"


def test_build_data_records_licences_and_isolates_failures(tmp_path):
    user = tmp_path / "u.jsonl"
    write_jsonl(user, synthetic_pairs(12))
    manifest = build_data(DataConfig(sources=("chatterbot",), user=(str(user), str(tmp_path / "nope.jsonl")),
                                     max_per_source=50), tmp_path / "data")
    chat = manifest["sources"]["chatterbot"]
    assert chat["written"] == 50 and chat["parsed"] > 1000 and "BSD" in chat["licence"]
    assert manifest["sources"]["user-u"]["written"] == 12
    assert "error" in manifest["sources"]["user-nope"]
    assert len(read_jsonl(tmp_path / "data" / "pairs" / "chatterbot.jsonl")) == 50
    assert manifest["held_out"]["squad_shifts_domain"] == "nyt"


def test_bigbench_tarball_extracts_only_the_tasks_used(tmp_path):
    import tarfile

    from trainer.build import bigbench_tasks

    src = tmp_path / "src" / "bigbench-1.0.0" / "bigbench" / "benchmark_tasks"
    for rel in ("squad_shifts/reddit_v1.0.json", "multiemo/all_text_en/task.json",
                "multiemo/all_sentence_en/task.json", "other_task/task.json"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("{}")
    archive = tmp_path / "bigbench-1.0.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "bigbench-1.0.0", arcname="bigbench-1.0.0")
    root = bigbench_tasks(tmp_path / "data", str(archive))
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["multiemo/all_text_en/task.json", "squad_shifts/reddit_v1.0.json"]
    assert bigbench_tasks(tmp_path / "other", str(tmp_path / "src" / "bigbench-1.0.0")) == src
    with pytest.raises(FileNotFoundError, match="not a bigbench sdist"):
        bigbench_tasks(tmp_path / "other", str(tmp_path))


PO_DE = '''\
# This file is distributed under the same license as the Django package.
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

#: forms.py:10
msgid "Enter a valid email address."
msgstr "Bitte gültige E-Mail-Adresse eingeben."

msgctxt "abbrev. month"
msgid "Jan."
msgstr "Jan."

#, python-format
msgid ""
"Please enter the correct %(username)s and password for a staff account. "
"Note that both fields may be case-sensitive."
msgstr ""
"Bitte %(username)s und Passwort für einen Staff-Account eingeben. "
"Beide Felder berücksichtigen die Groß-/Kleinschreibung."

#, fuzzy
msgid "Delete selected items"
msgstr "Ausgewählte löschen (unsicher)"
msgid "Untranslated string"
msgstr ""
#, python-format
msgid "%(count)d item"
msgid_plural "%(count)d items"
msgstr[0] "%(count)d Eintrag"
msgstr[1] "%(count)d Einträge"
msgid "Show <b>all</b> of {name}"
msgstr "Alle von {name} <b>zeigen</b>"

#~ msgid "Obsolete string"
#~ msgstr "Veraltet"
'''


def django_wheel(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("django/conf/locale/de/LC_MESSAGES/django.po", PO_DE)
        zf.writestr("django/contrib/admin/locale/zh_Hans/LC_MESSAGES/djangojs.po",
                    'msgid "Today"\nmsgstr "今天"\n\nmsgid "Now"\nmsgstr "现在"\n')
        zf.writestr("django/conf/locale/en_GB/LC_MESSAGES/django.po", 'msgid "Colour"\nmsgstr "Colour"\n')
        zf.writestr("django/conf/locale/de/LC_MESSAGES/django.mo", b"\x00binary")
    return path


def test_django_l10n_pairs_translations_with_their_english_originals(tmp_path):
    wheel = django_wheel(tmp_path / "Django-5.2.20-py3-none-any.whl")
    got = sources.django_l10n(wheel)
    assert sorted(got) == ["de", "zh_Hans"]  # English locales are no pairs
    assert [(p.query, p.pos) for p in got["de"]] == [
        ("Bitte gültige E-Mail-Adresse eingeben.", "Enter a valid email address."),
        ("Bitte username und Passwort für einen Staff-Account eingeben. Beide Felder berücksichtigen die "
         "Groß-/Kleinschreibung.", "Please enter the correct username and password for a staff account. Note "
         "that both fields may be case-sensitive."),
        ("count Eintrag", "count item"), ("Alle von name zeigen", "Show all of name")]
    assert {(p.source, p.task) for p in got["de"]} == {("django_l10n/de", "symmetric")}
    assert [(p.query, p.pos) for p in got["zh_Hans"]] == [("今天", "Today"), ("现在", "Now")]
    assert list(sources.django_l10n(wheel, ("zh_Hans",))) == ["zh_Hans"]
    with pytest.raises(ValueError, match=r"no catalogues for locales \['fr'\]; it has \['de', 'zh_Hans'\]"):
        sources.django_l10n(wheel, ("de", "fr"))


def test_build_data_writes_one_django_l10n_file_per_locale_with_its_licence(tmp_path):
    data = tmp_path / "data"
    (data / "sources" / "django").mkdir(parents=True)
    django_wheel(data / "sources" / "django" / "Django-5.2.20-py3-none-any.whl")  # cached: no pip download
    manifest = build_data(DataConfig(sources=("django_l10n",), languages=("de",)), data)
    assert list(manifest["sources"]) == ["django_l10n-de"]
    info = manifest["sources"]["django_l10n-de"]
    assert info["written"] == 4 and info["commercial"] and info["licence"].startswith("BSD-3-Clause")
    assert {r.source for r in read_jsonl(data / "pairs" / "django_l10n-de.jsonl")} == {"django_l10n/de"}
    with pytest.raises(ValueError, match="locale names"):
        DataConfig(languages=("German",))
