"""The torch-free runtime: pooling, prefixes, Matryoshka, truncation, batching, device selection."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedder.runtime import Embedder

TEXTS = ["the cat sat on the mat", "a", "Sparse mixture of experts " * 20, "émigré café naïve", "42"]


def test_embed_documents_shape_and_norm(tiny_model_dir):
    emb = Embedder(tiny_model_dir, device="cpu")
    assert emb.provider == "CPUExecutionProvider" and emb.model_file.name == "model.cpu-int8.onnx"
    vecs = emb.embed_documents(TEXTS)
    assert vecs.shape == (5, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert emb.embed_documents([]).shape == (0, 32)
    with pytest.raises(TypeError):
        emb.encode("one string")


def test_prefixes_are_applied(tiny_model_dir):
    emb = Embedder(tiny_model_dir, variant="gather")
    q = emb.embed_query("solar panels")
    assert q.shape == (32,)
    np.testing.assert_allclose(q, emb.encode(["solar panels"], "search_query: ").vectors[0], atol=1e-6)
    np.testing.assert_allclose(emb.embed_documents(["solar panels"])[0],
                               emb.encode(["solar panels"], "search_document: ").vectors[0], atol=1e-6)
    assert float(q @ emb.encode(["solar panels"]).vectors[0]) < 0.99999


def test_batching_by_length_does_not_change_vectors(tiny_model_dir):
    emb = Embedder(tiny_model_dir, variant="gather")
    together = emb.embed_documents(TEXTS, batch_size=2)
    alone = np.stack([emb.embed_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    seen = []
    emb.embed_documents(TEXTS, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_truncation_is_reported(tiny_model_dir):
    emb = Embedder(tiny_model_dir)
    enc = emb.encode(["word " * 500, "short"])
    assert enc.truncated.tolist() == [True, False]
    assert enc.n_tokens[0] == emb.max_length == 128
    short = Embedder(tiny_model_dir, max_length=16)
    assert short.encode(["word " * 20]).truncated[0]
    with pytest.raises(ValueError, match="max_length must be in 2..128"):
        Embedder(tiny_model_dir, max_length=1000)


def test_matryoshka_dims(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    settings = json.loads((folder / "moesearch.json").read_text())
    settings["matryoshka_dims"] = [32, 16, 8]
    (folder / "moesearch.json").write_text(json.dumps(settings))
    full = Embedder(folder, variant="gather")
    small = Embedder(folder, variant="gather", dim=8)
    assert full.dims == (32, 16, 8) and small.dim == 8
    a, b = full.embed_documents(TEXTS), small.embed_documents(TEXTS)
    assert b.shape == (5, 8)
    np.testing.assert_allclose(b, a[:, :8] / np.linalg.norm(a[:, :8], axis=1, keepdims=True), atol=1e-5)
    assert full.embed_query("x", dim=16).shape == (16,)
    with pytest.raises(ValueError, match=r"dim must be one of \(32, 16, 8\)"):
        Embedder(folder, dim=12)


@pytest.mark.no_cuda
def test_cuda_without_cuda_ep_is_a_clear_error(tiny_model_dir):
    with pytest.raises(RuntimeError, match="no CUDA EP"):
        Embedder(tiny_model_dir, device="cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        Embedder(tiny_model_dir, device="tpu")


@pytest.mark.no_cuda  # a real CUDA EP would start
def test_silent_cuda_fallback_is_caught(tiny_model_dir, monkeypatch, caplog):
    """A build that lists the CUDA EP but cannot start it gives a CPU session; only get_providers() tells.
    'cuda' must refuse it and 'auto' must say it runs on CPU (and pick the int8 CPU file)."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="fell back"):
        Embedder(tiny_model_dir, device="cuda")
    with caplog.at_level(logging.INFO, logger="embedder.runtime"):
        emb = Embedder(tiny_model_dir, device="auto")
    assert emb.provider == "CPUExecutionProvider" and emb.model_file.name == "model.cpu-int8.onnx"
    assert "CUDA not usable" in caplog.text and "on CPUExecutionProvider" in caplog.text


@pytest.mark.gpu
def test_cuda_embeddings_match_the_cpu(tiny_model_dir):
    """device='cuda' runs on the CUDA EP (never a silent CPU fallback) and gives the CPU's fp32 vectors."""
    texts = ["protein folding on a GPU", "a second, longer text about sparse mixtures of experts"]
    gpu = Embedder(tiny_model_dir, device="cuda")
    cpu = Embedder(tiny_model_dir, device="cpu", variant="fused")
    assert gpu.provider == "CUDAExecutionProvider" and cpu.provider == "CPUExecutionProvider"
    np.testing.assert_allclose(gpu.embed_documents(texts), cpu.embed_documents(texts), atol=2e-3)


def test_missing_onnx_files_say_how_to_build_them(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(FileNotFoundError, match="python -m embedder export"):
        Embedder(folder)


def test_route_returns_router_choices(tiny_model_dir):
    emb = Embedder(tiny_model_dir, variant="fused")
    r = emb.route("which experts fire?")
    assert r.layers == [1] and r.num_experts == 4
    assert r.experts.shape == (1, len(r.tokens), 2)
    assert r.experts.min() >= 0 and r.experts.max() < 4
    np.testing.assert_allclose(r.weights.sum(-1), 1, atol=1e-5)


@pytest.mark.no_cuda  # asserts the CPU provider under device='auto'
def test_runtime_never_imports_torch(tiny_model_dir):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "from embedder.runtime import Embedder\n"
        f"e = Embedder({str(tiny_model_dir)!r})\n"
        "v = e.embed_documents(['no torch here'])\n"
        "assert v.shape == (1, 32)\n"
        "assert 'transformers' not in sys.modules\n"
        "print('ok', e.provider)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert "ok CPUExecutionProvider" in out.stdout


@pytest.mark.slow  # the full-size model, upcycled and exported on a fresh clone
def test_golden_vectors_match_sentence_transformers(full_model_dir):
    """The shipped runtime path on the real upcycled MiniLM reproduces sentence-transformers' all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    from embedder.upcycle import default_dense_dir

    st = SentenceTransformer(str(default_dense_dir()), device="cpu")
    texts = ["How do mixture-of-experts models route tokens?", "Paris is the capital of France.",
             "Vitamin D deficiency is associated with an increased risk of fractures. " * 6]
    ref = st.encode(texts, normalize_embeddings=True)
    for variant, bound in (("fused", 0.9999), ("int8", 0.99)):
        emb = Embedder(full_model_dir, variant=variant, max_length=st.max_seq_length)
        got = emb.encode(texts).vectors  # no prefix: the base model was trained without one
        assert (got * ref).sum(1).min() >= bound, variant
    assert Embedder(full_model_dir).dims == (384, 256, 128, 64)


def test_thread_spinning_is_off_unless_asked(tiny_model_dir):
    """A serving process's onnxruntime threads must not busy-wait after embedding a query (they would take the
    cores its search needs); embedding workers ask for it."""
    key = "session.intra_op.allow_spinning"
    serving = Embedder(tiny_model_dir, device="cpu")
    assert serving.session.get_session_options().get_session_config_entry(key) == "0"
    worker = Embedder(tiny_model_dir, device="cpu", spinning=True)
    assert worker.session.get_session_options().get_session_config_entry(key) == "1"
    q = "a short query"
    assert np.allclose(serving.embed_query(q), worker.embed_query(q), atol=1e-6)  # threading only: same vectors
