"""Keyword search in every script (BM25 mode ``multilingual``, indexer/keywords.py): per language a keyword finds
the right one of a few short documents (Bm25Encoder's vectors scored with a naive BM25 reference, and once through
the real pipeline and store), highlighting marks the right substrings, long Chinese / Thai text is chunked without
losing any of it, and term ids are stable across encoders and processes."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from indexer import keywords
from indexer.chunking import chunk_pages, rebuild_page, segments
from indexer.encoders import Encoders
from indexer.files import Source
from indexer.pipeline import Pipeline
from indexer.sparse import Bm25Encoder, Bm25Params, resolve_language

ROOT = Path(__file__).resolve().parents[2]
E5_TOKENIZER = ROOT / "models" / "multilingual-e5-moe" / "tokenizer.json"

# language -> (documents, [(query, index of the document it must find first)])
CASES = {
    "zh": (["我在北京大学学习中文。", "上海是一个很大的城市，人口很多。", "今天的天气非常好，我们去公园。"],
           [("北京", 0), ("城市", 1), ("天气", 2), ("北京大学在哪里", 0)]),
    "ja": (["東京に住んでいます。", "京都の寺はとても古いです。", "猫が好きです。"],
           [("東京", 0), ("京都", 1), ("猫", 2), ("ｷｮｳﾄの寺", 1)]),  # half-width katakana query
    "th": (["ฉันชอบกินข้าวผัดทุกวัน", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "แมวนอนอยู่บนโต๊ะ"],
           [("เมืองหลวง", 1), ("ข้าวผัด", 0), ("แมว", 2)]),
    "ar": (["اَلْمَكْتَبَةُ مَفْتُوحَةٌ اليوم", "ذهب أحمد إلى السوق", "الطقس جميل في الربيع"],
           [("المكتبة", 0), ("احمد", 1), ("الربيع", 2)]),  # no harakat, bare alef
    "hi": (["मुझे हिन्दी भाषा पसंद है", "दिल्ली भारत की राजधानी है", "आज मौसम अच्छा है"],
           [("राजधानी", 1), ("हिन्दी", 0), ("मौसम", 2)]),
    "ru": (["Москва — столица России", "Я люблю читать книги по истории", "Ёлка стоит в комнате"],
           [("столицы", 0), ("история", 1), ("елка", 2)]),  # other cases of столица, истории: the truncation
    "de": (["Die Straße ist lang und breit", "Der Hund schläft im Garten", "Herr Müller kauft Brot"],
           [("Strasse", 0), ("Garten", 1), ("muller", 2)]),
    "es": (["La canción es muy bonita", "El niño juega en el parque", "Madrid es la capital de España"],
           [("cancion", 0), ("niño", 1), ("España", 2)]),
    "en": (["The ribosome builds proteins in the cell", "Glaciers carve deep valleys", "Solar panels make power"],
           [("ribosomes", 0), ("glaciers valleys", 1), ("SOLAR", 2), ("building", 0)]),
}


def naive_scores(encoder: Bm25Encoder, docs: list[str], query: str) -> list[float]:
    """BM25 with Qdrant's IDF (ln((N - n + 0.5) / (n + 0.5) + 1)) over the encoder's document vectors."""
    vecs = [dict(zip(v.indices, v.values, strict=True)) for v in map(encoder.document, docs)]
    df = Counter(i for v in vecs for i in v)
    idf = {i: math.log((len(docs) - n + 0.5) / (n + 0.5) + 1.0) for i, n in df.items()}
    q = encoder.query(query)
    return [sum(w * v.get(i, 0.0) * idf.get(i, 0.0) for i, w in zip(q.indices, q.values, strict=True)) for v in vecs]


@pytest.fixture(scope="module")
def multilingual() -> Bm25Encoder:
    return Bm25Encoder(Bm25Params("multilingual"))


@pytest.mark.parametrize("lang", sorted(CASES))
def test_a_keyword_finds_its_document_in_every_language(multilingual, lang):
    docs, queries = CASES[lang]
    for query, want in queries:
        scores = naive_scores(multilingual, docs, query)
        assert max(range(len(docs)), key=scores.__getitem__) == want and scores[want] > 0, (query, scores)
        assert sorted(scores)[-2] < scores[want], (query, scores)


def test_english_mode_cannot_search_inside_chinese_text():
    """Why the multilingual mode exists: Qdrant's English tokenizer makes a Chinese sentence one word."""
    docs = CASES["zh"][0]
    assert max(naive_scores(Bm25Encoder(Bm25Params("english")), docs, "北京")) == 0.0


def test_terms_and_document_weights():
    assert keywords.terms("北京大学") == (["北", "京", "大", "学", "北京", "京大", "大学"], 4)
    assert keywords.terms("北京大学", query=True) == (["北京", "京大", "大学"], 4)
    assert keywords.terms("猫", query=True)[0] == ["猫"]
    assert keywords.terms("iPhone15で遊ぶ", query=True)[0] == ["iphone15", "で遊", "遊ぶ"]
    assert keywords.terms("हिन्दी भाषा") == (["हिन्दी", "हिन्द", "भाषा"], 2)  # vowel signs and virama stay in the word
    assert keywords.terms("Straße ÉCOLE ёж ＡＢＣ")[0] == ["strasse", "stras", "ecole", "еж", "abc"]
    assert keywords.terms("searching 1234567")[0] == ["searching", "searc", "1234567"]  # numbers are not truncated
    p = Bm25Params("multilingual", k=1.2, b=0.75, avg_len=4.0)
    vec = Bm25Encoder(p).document("apple apple pie tart")  # length 4 = avg_len: norm = k
    got = dict(zip(vec.indices, vec.values, strict=True))
    assert got[keywords.term_id("apple")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert got[keywords.term_id("pie")] == pytest.approx(2.2 / (1 + 1.2))
    assert list(vec.indices) == sorted(vec.indices) and Bm25Encoder(p).document("  ...  ").indices == ()
    q = Bm25Encoder(p).query("pie pie apple")
    assert set(q.values) == {1.0} and len(q.indices) == 2


def test_highlighting_marks_the_matching_substrings(multilingual):
    text = "我在北京大学学习，北京很大。"
    got = multilingual.matched_terms("北京大学", text)
    assert got == ("北京大学", "北京")  # the stretches the query's bigrams cover, not the whole sentence
    assert keywords.highlight_spans(text, got) == [(2, 6), (9, 11)]
    assert multilingual.matched_terms("北京", "我在北京大学学习") == ("北京",)
    assert multilingual.matched_terms("ภาษา", "ฉันรักภาษาไทยมาก") == ("ภาษา",)
    # Thai: one shared bigram (อง of เมือง inside ของ) is too small a stretch to highlight
    assert multilingual.matched_terms("เมืองหลวง", "เมืองหลวงของประเทศ") == ("เมืองหลวง",)
    assert multilingual.matched_terms("東京", "東京に住んでいます") == ("東京",)
    voweled = "اَلْمَكْتَبَةُ مَفْتُوحَةٌ"
    assert multilingual.matched_terms("المكتبة", voweled) == ("اَلْمَكْتَبَةُ",)  # as written in the text
    assert multilingual.matched_terms("हिन्दी", "मुझे हिन्दी भाषा पसंद है") == ("हिन्दी",)
    assert multilingual.matched_terms("muller", "Herr Müller kauft Brot") == ("Müller",)
    assert multilingual.matched_terms("searching", "He searched; research and search") == ("searched", "search")
    assert multilingual.matched_terms("the", "nothing here") == ()
    # a term never splits a Thai character from its marks: กร is not highlighted inside กรุง
    assert keywords.highlight_spans("กรุงเทพ กร", ["กร"]) == [(8, 10)]
    assert keywords.highlight_spans("Run running RUN", ["run"]) == [(0, 3), (12, 15)]

    from app.snippets import highlight

    html = highlight("<b>我在北京大学学习</b>", ("北京",))
    assert html == "&lt;b&gt;我在<mark>北京</mark>大学学习&lt;/b&gt;"
    assert highlight("मुझे हिन्दी भाषा", ("हिन्दी",)) == "मुझे <mark>हिन्दी</mark> भाषा"


def test_term_ids_are_stable_across_encoders_and_processes():
    a, b = Bm25Encoder(Bm25Params("multilingual")), Bm25Encoder(Bm25Params("multilingual"))
    texts = ["我在北京大学学习", "ภาษาไทย", "Müller", "हिन्दी"]
    assert [a.query(t) for t in texts] == [b.query(t) for t in texts]
    assert [a.document(t) for t in texts] == [b.document(t) for t in texts]
    code = ("from indexer.sparse import Bm25Encoder, Bm25Params; e = Bm25Encoder(Bm25Params('multilingual')); "
            f"print([list(e.query(t).indices) for t in {texts!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT),
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == str([list(a.query(t).indices) for t in texts])
    # the same hash as Qdrant's own BM25 (an ASCII word that neither stems nor is a stop word)
    assert a.query("hello").indices == Bm25Encoder(Bm25Params("english")).query("hello").indices


def test_the_mode_is_part_of_the_index_spec(tiny_embedder, make_settings):
    params = Bm25Params("multilingual")
    assert params.as_dict()["analyzer"] == keywords.ANALYZER and Bm25Params(**params.as_dict()) == params
    assert Bm25Params().as_dict() == {"language": "english", "k": 1.2, "b": 0.75, "avg_len": 256.0}  # unchanged
    with pytest.raises(ValueError, match="reindex"):
        Bm25Params("multilingual", analyzer="something-older")
    with pytest.raises(ValueError, match="auto"):
        Bm25Params("auto")
    assert resolve_language("auto", 250_002) == "multilingual" and resolve_language("AUTO", 30_522) == "english"
    assert resolve_language("german", 250_002) == "german"
    # auto: the tiny model has MiniLM's English vocabulary
    assert Encoders.spec_for(tiny_embedder, make_settings()).bm25["language"] == "english"
    spec = Encoders.spec_for(tiny_embedder, make_settings(bm25_language="multilingual"))
    assert spec.bm25 == params.as_dict()


def test_pipeline_keyword_search_and_highlights_in_chinese_and_thai(make_settings, tiny_embedder):
    docs = {"zh.txt": "我在北京大学学习中文。北京是中国的首都。", "th.txt": "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
            "en.txt": "Glaciers carve deep valleys in the mountains.", "ja.txt": "東京に住んでいます。猫が好きです。"}
    with Pipeline(make_settings(bm25_language="multilingual"), embedder=tiny_embedder) as p:
        assert p.ingest([Source.upload(n, t.encode()) for n, t in docs.items()]).ok == 4
        for query, source, terms in (("北京", "zh.txt", ("北京",)), ("เมืองหลวง", "th.txt", ("เมืองหลวง",)),
                                     ("猫", "ja.txt", ("猫",)), ("valleys", "en.txt", ("valleys",))):
            hits = p.search(query, k=4, mode="keyword")
            assert [h.source for h in hits] == [source], (query, hits)
            assert hits[0].matched_terms == terms
    # the index keeps its mode: opened with English BM25 it is stale and still answers in its own mode
    with Pipeline(make_settings(bm25_language="english"), embedder=tiny_embedder) as p:
        assert p.stats().reindex_needed
        assert [h.source for h in p.search("北京", k=4, mode="keyword")] == ["zh.txt"]


def _long_texts() -> dict[str, str]:
    rnd = random.Random(7)
    han = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以"
           "生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想"
           "看文无开手十用主行方又如前所本见经头面公同三已老从动两长")
    thai = ["กรุงเทพ", "มหานคร", "เป็น", "เมือง", "หลวง", "ของ", "ประเทศ", "ไทย", "มี", "ประชากร", "มาก", "ที่สุด",
            "ภาษา", "อาหาร", "อร่อย", "แมว", "นอน", "อยู่", "บน", "โต๊ะ"]
    zh = "".join("".join(rnd.choice(han) for _ in range(rnd.randint(8, 30))) + rnd.choice("。，！？")
                 for _ in range(150))
    th = " ".join("".join(rnd.choice(thai) for _ in range(rnd.randint(3, 9))) for _ in range(120))
    return {"zh": zh, "th": th, "th-no-spaces": th.replace(" ", ""), "ja": zh.replace("的", "の").replace("是", "は")}


def _trained_tokenizer(texts) -> Tokenizer:
    """A small SentencePiece-like BPE (Metaspace: offsets include the space before a word) trained on the texts."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"]))
    return tok


def _tokenizers():
    yield "trained-bpe"
    if E5_TOKENIZER.is_file():
        yield "multilingual-e5"


@pytest.mark.parametrize("which", list(_tokenizers()))
def test_long_chinese_and_thai_text_is_chunked_without_losing_text(which):
    texts = _long_texts()
    if which == "trained-bpe":
        tok = _trained_tokenizer(list(texts.values()))
    else:
        tok = Tokenizer.from_file(str(E5_TOKENIZER))
    tok.no_truncation()
    tok.no_padding()
    for name, text in texts.items():
        chunks = chunk_pages([(1, text)], tok, 48, 8)
        assert len(chunks) > 5, name
        assert all(c.text.strip() and 1 <= c.n_tokens <= 48 for c in chunks), name
        assert rebuild_page([(c.start, c.end, c.text) for c in chunks]) == text, name
        if name in ("zh", "ja"):  # cuts land after a full stop or a comma, not inside a sentence
            ends = [c.text[-1] in "。，！？" for c in chunks[:-1]]
            assert sum(ends) >= 0.8 * len(ends), (name, [c.text[-8:] for c in chunks[:-1]])
    zh = texts["zh"]
    parts = list(segments(zh, 500))  # a page longer than a segment, with no space or line break in it
    assert parts[0][0] == 0 and parts[-1][1] == len(zh)
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    assert all(zh[end - 1] in "。！？" for _, end in parts[:-1])
