"""The torch model: upcycling is exact against HF's own BertModel, save/load, pooling, Matryoshka."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.settings import EmbeddingSettings
from embedder.upcycle import default_dense_dir, upcycle

TEXTS = ["hello world", "x", "Mixture-of-experts layers route each token to two of eight experts. " * 12,
         "Ünïcödé, emoji 🙂 and numbers 3.14159", "   leading spaces and a tab\tinside"]


def dense_vs_moe(dense_dir, moe_dir, max_length=None):
    tok = AutoTokenizer.from_pretrained(str(moe_dir))
    batch = tok(TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    dense = AutoModel.from_pretrained(str(dense_dir)).eval()
    moe = AutoModel.from_pretrained(str(moe_dir)).eval()
    assert isinstance(moe, MoeBertModel)
    with torch.no_grad():
        ref = mean_pool(dense(**batch).last_hidden_state, batch["attention_mask"])
        got = mean_pool(moe(batch["input_ids"], batch["attention_mask"]).last_hidden_state, batch["attention_mask"])
    return (got - ref).abs().max().item(), moe


def test_tiny_upcycle_equals_dense(tiny_dense_dir, tmp_path):
    out = upcycle(tmp_path / "m", tiny_dense_dir, num_experts=4, top_k=2, max_length=128)
    diff, moe = dense_vs_moe(tiny_dense_dir, out, max_length=128)
    assert diff <= 1e-5
    assert moe.config.moe_layers == [1]
    assert len(moe.moe_blocks()) == 1 and len(moe.moe_blocks()[0].experts) == 4


def test_minilm_upcycle_equals_dense(tmp_path):
    """The real base: all-MiniLM-L6-v2 -> 8 experts in layers 1, 3, 5; embeddings unchanged (<= 1e-5)."""
    out = upcycle(tmp_path / "minilm-moe")
    diff, moe = dense_vs_moe(default_dense_dir(), out)
    assert diff <= 1e-5
    assert moe.config.moe_layers == [1, 3, 5] and moe.config.num_experts == 8
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "moesearch.json", "README.md"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    s = EmbeddingSettings.load(out)
    assert s.matryoshka_dims == (384, 256, 128, 64) and s.query_prefix == "search_query: "


def test_upcycle_refuses_non_bert(tmp_path, tiny_dense_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dense_dir, bad)
    cfg = (bad / "config.json").read_text().replace('"model_type": "bert"', '"model_type": "gpt2"')
    (bad / "config.json").write_text(cfg)
    with pytest.raises(ValueError, match="model_type must be 'bert'"):
        upcycle(tmp_path / "out", bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        upcycle(tmp_path / "out", bad)


def test_save_load_round_trip_and_router_logits(tiny_model_dir, tmp_path):
    model = MoeBertModel.from_pretrained(tiny_model_dir).eval()
    model.save_pretrained(tmp_path)
    again = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(1000, 5000, (2, 6))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a, b = model(ids, mask), again(ids, mask)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state)
    assert len(a.router_logits) == 1 and a.router_logits[0].shape == (12, 4)


def test_padding_does_not_change_embeddings(tiny_model_dir):
    model = MoeBertModel.from_pretrained(tiny_model_dir).eval()
    ids = torch.randint(1000, 5000, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 5), torch.zeros(1, 4)], 1).long()
    with torch.no_grad():
        a, _ = model.embed(ids, torch.ones_like(ids))
        b, _ = model.embed(padded, mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_matryoshka_truncation_renormalises():
    emb = torch.randn(3, 384)
    for dim in (384, 256, 128, 64):
        t = truncate_normalize(emb, dim)
        assert t.shape == (3, dim)
        torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))
        torch.testing.assert_close(t, emb[:, :dim] / emb[:, :dim].norm(dim=-1, keepdim=True))


def test_set_dropout_reaches_every_dropout_and_the_config(tiny_model_dir):
    model = MoeBertModel.from_pretrained(tiny_model_dir)
    model.set_dropout(0.25)
    assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == 0.25
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.25}
    assert {layer.attention.self.dropout_p for layer in model.encoder.layer} == {0.25}
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        model.set_dropout(1.0)
