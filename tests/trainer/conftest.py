"""Trainer fixtures: a private tiny MoE folder to train from, and a synthetic training file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from trainer_helpers import synthetic_pairs


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: a second OpenMP thread only spins (10-100x slower under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def moe_dir(tmp_path, tiny_model_dir) -> Path:
    """A private copy of the tiny MoE folder (without onnx/) that a test may train from."""
    dst = tmp_path / "init"
    shutil.copytree(tiny_model_dir, dst, ignore=shutil.ignore_patterns("onnx"))
    return dst


@pytest.fixture
def train_file(tmp_path) -> Path:
    from trainer.data import write_jsonl

    path = tmp_path / "train.jsonl"
    write_jsonl(path, synthetic_pairs(96, negs=2))
    return path
