"""The trained model the product ships (models/moesearch-minilm-moe, written by `python -m trainer recipe`):
its folder contract, that it is the default, and that its ONNX export (what `prepare` builds on a fresh clone)
embeds what the torch model embeds."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from embedder.registry import resolve
from embedder.settings import SHIPPED_MODEL, EmbeddingSettings, default_model_dir

MAX_FILE_BYTES = 100 * 1000 * 1000
HELD_OUT_ROWS = ("scifact:test", "cranfield:test", "squad_shifts-nyt:test")


SHIPPED = resolve(SHIPPED_MODEL).folder  # the current published version (models/NAME/<version>/)


def test_shipped_folder_contract():
    assert (SHIPPED_MODEL / "current").is_file(), "the trained model must be published under models/ (registry)"
    assert (SHIPPED / "config.json").is_file(), "the trained model must be committed under models/"
    cfg = json.loads((SHIPPED / "config.json").read_text())
    assert cfg["model_type"] == "moesearch_bert"
    assert cfg["num_experts"] == 8 and cfg["num_experts_per_tok"] == 2 and cfg["moe_layers"] == [1, 3, 5]
    for f in SHIPPED_MODEL.rglob("*"):  # every committed version
        if f.is_file() and "onnx" not in f.parts:  # onnx/ is git-ignored and built by `prepare`
            assert f.stat().st_size < MAX_FILE_BYTES, f
    with safe_open(str(SHIPPED / "model.safetensors"), framework="numpy") as st:
        dtypes = {st.get_slice(k).get_dtype() for k in st.keys()}
    assert dtypes == {"F16"}, dtypes
    settings = EmbeddingSettings.load(SHIPPED)
    assert settings.model_id == "moesearch-minilm-moe" and settings.pooling == "mean"
    assert settings.extra["step"] > 0  # trained, not the upcycled copy


def test_model_card_reports_every_target_against_the_base():
    card = (SHIPPED / "README.md").read_text()
    for row in HELD_OUT_ROWS:
        line = next((x for x in card.splitlines() if x.startswith(f"| {row} |")), None)
        assert line is not None, f"model card has no eval row for {row}"
        base, model = (cell.split("/")[0].strip() for cell in line.strip("|").split("|")[1:3])
        assert 0.0 < float(base) < 1.0 and 0.0 < float(model) < 1.0
    assert "nyt" in card and "seed" in card and "temperature" in card


def test_shipped_model_is_the_default(monkeypatch):
    monkeypatch.delenv("MOESEARCH_MODEL", raising=False)
    assert default_model_dir() == SHIPPED


@pytest.fixture(scope="module")
def shipped_prepared(tmp_path_factory):
    """The current shipped version copied to a temporary folder and prepared there (never writes into models/)."""
    import shutil

    from embedder.__main__ import main

    copy = tmp_path_factory.mktemp("shipped") / SHIPPED.name
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("onnx"))
    assert main(["prepare", str(copy)]) == 0
    return copy


@pytest.mark.slow  # a full-model export (about a minute): `pytest -m slow`
def test_shipped_onnx_matches_torch(shipped_prepared):
    import torch

    from embedder.runtime import Embedder
    from trainer.encode import TextEncoder

    texts = ["Aspirin lowers the risk of a second heart attack.",
             "Boundary-layer transition on a flat plate at supersonic speed",
             "what is a mixture of experts model"]
    runtime = Embedder(shipped_prepared, device="cpu")
    got = runtime.embed_documents(texts)
    ref = TextEncoder.load(shipped_prepared).embed(texts, prefix=runtime.settings.document_prefix,
                                                    progress=False)
    ref = torch.nn.functional.normalize(ref.float(), dim=-1).numpy()
    cos = (got * ref).sum(-1)
    assert got.shape == (3, 384) and np.all(cos > 0.99), cos
