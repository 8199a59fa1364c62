"""TextEncoder: tokenisation limits, the dense base path, and bf16 autocast through the MoE blocks."""

import torch
import torch.nn.functional as F

from trainer.encode import TextEncoder


def test_truncation_keeps_cls_and_sep(tiny_model_dir):
    enc = TextEncoder.load(tiny_model_dir)
    ids, mask = enc.tokenize(["word " * 100, "short"], 12)
    assert ids.shape == (2, 12) and mask[0].sum() == 12 and mask[1].sum() < 12
    cls, sep = enc.tokenizer.token_to_id("[CLS]"), enc.tokenizer.token_to_id("[SEP]")
    assert ids[0, 0] == cls and ids[0, -1] == sep


def test_dense_folder_loads_without_prefixes(tiny_dense_dir):
    enc = TextEncoder.load(tiny_dense_dir)
    assert not enc.is_moe and enc.settings.query_prefix == "" and enc.settings.document_prefix == ""
    v = enc.embed(["a b c", "d e"], progress=False)
    assert v.shape == (2, 32) and torch.allclose(v.norm(dim=-1), torch.ones(2))


def test_bf16_autocast_runs_through_moe_blocks(tiny_model_dir):
    enc = TextEncoder.load(tiny_model_dir)
    ids, mask = enc.tokenize(["the river near the bridge", "a copper kettle"], 16)
    with torch.no_grad():
        fp32, logits32 = enc.forward(ids, mask)
        enc.bf16 = True
        bf16, logits16 = enc.forward(ids, mask)
    assert bf16.dtype == torch.float32 and logits16[0].dtype == torch.float32
    assert F.cosine_similarity(fp32, bf16).min() > 0.99
    enc.model.train()
    loss = enc.forward(ids, mask)[0].pow(2).sum()  # backward under autocast reaches the experts
    loss.backward()
    grads = [e.fc1.weight.grad for e in enc.model.moe_blocks()[0].experts]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_moe_sparse_dispatch_runs_in_bf16_under_autocast(tiny_model_dir):
    """No fp32 island: under bf16 autocast the experts compute in bf16 and the sparse dispatch accepts it."""
    from embedder.moe import MoEBlock

    enc = TextEncoder.load(tiny_model_dir)
    blocks = enc.model.moe_blocks()
    assert blocks and all(type(b).forward is MoEBlock.forward and "forward" not in vars(b) for b in blocks)
    seen = []
    handle = blocks[0].experts[0].fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(2, 7, enc.hidden_size)  # (B, T, H) fp32, as LayerNorm hands it over
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    ref, _ = blocks[0](x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, logits = blocks[0](x, mask)
    handle.remove()
    assert torch.bfloat16 in seen and out.dtype == x.dtype
    assert torch.allclose(out, ref, atol=0.05 * ref.abs().max().item())
    assert out[1, 5:].abs().sum() == 0  # padding still reaches no expert


def test_use_bf16_only_where_the_hardware_has_it(tiny_model_dir, monkeypatch, caplog):
    import trainer.encode as encode

    enc = TextEncoder.load(tiny_model_dir)
    monkeypatch.setattr(encode, "bf16_is_native", lambda device: False)
    with caplog.at_level("WARNING", logger="trainer.encode"):
        assert enc.use_bf16(True, "stage pretrain") is False
    assert not enc.bf16 and "stage pretrain" in caplog.text and "fp32" in caplog.text
    caplog.clear()
    assert enc.use_bf16(False, "stage pretrain") is False and not caplog.text  # not asked for: nothing to say
    monkeypatch.setattr(encode, "bf16_is_native", lambda device: True)
    assert enc.use_bf16(True, "stage pretrain") is True and enc.bf16


def test_bf16_is_native_follows_the_cpu_flags(monkeypatch):
    import trainer.encode as encode

    cpu = torch.device("cpu")
    for bf16, amx, want in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert encode.bf16_is_native(cpu) is want
