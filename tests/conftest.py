"""Shared fixtures: a tiny MoE model folder (hidden 32, 2 layers, 4 experts) with the real MiniLM
tokenizer, built once per session and exported to ONNX, so every package can test against a real
model folder in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TINY = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128, num_experts=4, num_experts_per_tok=2)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _cuda_ep() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``no_cuda`` check what a machine without CUDA does: skipped where onnxruntime has the CUDA EP;
    tests marked ``gpu`` run on the CUDA EP: skipped where onnxruntime has none."""
    cuda = _cuda_ep()
    skip = pytest.mark.skip(reason="assumes a machine without CUDA; this onnxruntime has the CUDA EP") if cuda \
        else pytest.mark.skip(reason="needs onnxruntime's CUDA EP (the `gpu` extra) and a GPU")
    for item in items:
        if ("no_cuda" if cuda else "gpu") in item.keywords:
            item.add_marker(skip)


def build_tiny_dense(folder: Path, seed: int = 0) -> Path:
    """A random dense BERT folder (HF layout) with all-MiniLM-L6-v2's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from embedder.settings import TOKENIZER_FILES
    from embedder.upcycle import default_dense_dir

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=TINY["vocab_size"], hidden_size=TINY["hidden_size"],
                     num_hidden_layers=TINY["num_hidden_layers"], num_attention_heads=TINY["num_attention_heads"],
                     intermediate_size=TINY["intermediate_size"],
                     max_position_embeddings=TINY["max_position_embeddings"])
    model = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():  # break LayerNorm symmetry so layers are not near-identity
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        src = default_dense_dir() / name
        if src.is_file():
            shutil.copyfile(src, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_dense_dir(tmp_path_factory) -> Path:
    return build_tiny_dense(tmp_path_factory.mktemp("tiny-dense"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dense_dir) -> Path:
    """Upcycled tiny MoE folder with routers made non-trivial, exported (fused + int8 + gather + dense)."""
    import torch

    from embedder.export import export
    from embedder.model import MoeBertModel
    from embedder.upcycle import upcycle

    out = upcycle(tmp_path_factory.mktemp("tiny-moe") / "tiny-moe", tiny_dense_dir, num_experts=4, top_k=2,
                  max_length=TINY["max_position_embeddings"])
    # Make the experts differ (as after training) so routing matters in every parity test.
    model = MoeBertModel.from_pretrained(out).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for block in model.moe_blocks():
            block.router.weight.normal_(0, 1.0)
            for expert in block.experts:
                for p in expert.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(out, safe_serialization=True)
    export(out, variants=("fused", "int8", "gather", "dense"))
    json.loads((out / "onnx" / "manifest.json").read_text())
    return out


@pytest.fixture(scope="session")
def full_model_dir(tmp_path_factory) -> Path:
    """The full-size default model (upcycled all-MiniLM-L6-v2, 8 experts), prepared as README's set-up does, in a
    temporary folder: a copy of the repository's models/minilm-moe-upcycled when it is there, else upcycled anew
    (the repository's models/ is never written)."""
    from embedder.__main__ import main
    from embedder.settings import UPCYCLED_MODEL
    from embedder.upcycle import upcycle

    out = tmp_path_factory.mktemp("full-model") / UPCYCLED_MODEL.name
    if (UPCYCLED_MODEL / "config.json").is_file():
        shutil.copytree(UPCYCLED_MODEL, out)
    else:
        upcycle(out)
    assert main(["prepare", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_task_model_dir(tmp_path_factory, tiny_dense_dir) -> Path:
    """Upcycled tiny task-expert (MoTE) folder, 3 tasks in layer 1, experts made to differ, exported
    (fused + int8 + gather + dense)."""
    import torch

    from embedder.export import export
    from embedder.model import MoeBertModel
    from embedder.upcycle import upcycle

    out = upcycle(tmp_path_factory.mktemp("tiny-task") / "tiny-task", tiny_dense_dir, moe_mode="task",
                  max_length=TINY["max_position_embeddings"])
    model = MoeBertModel.from_pretrained(out).eval()
    torch.manual_seed(2)
    with torch.no_grad():
        for block in model.task_blocks():
            for expert in block.experts:
                for p in expert.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out, safe_serialization=True)
    export(out, variants=("fused", "int8", "gather", "dense"))
    return out
