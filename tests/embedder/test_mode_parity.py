"""Parity of both MoE modes across refactors: for fixed inputs, the torch embeddings and every exported ONNX file's
embeddings of the tiny topk and task fixtures equal golden values recorded from the code before the MoE mode became
a strategy object (embedder.modes), and each file still equals torch; likewise the runtime's routing panel.

The golden arrays are each row's first 8 dims, rounded to 1e-5. They pin the fixtures' seeded weights as well as the
code, so a change to tests/conftest.py's fixtures (or to the tiny dense base) means recording them again: run this
file with ``MOESEARCH_PRINT_GOLDEN=1 -s`` and paste what it prints (only after checking ONNX == torch still holds)."""

import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.runtime import Embedder
from embedder.settings import ONNX_FILES

VARIANTS = ("fused", "gather", "dense", "int8")
BOUNDS = {"fused": 0.9999, "gather": 0.9999, "dense": 0.9999, "int8": 0.99}  # cosine to torch, as test_export
ATOL = {"torch": 2e-5, "fused": 2e-5, "gather": 2e-5, "dense": 2e-5, "int8": 2e-4}  # int8: kernel rounding per CPU
# Three ragged rows (101 [CLS], 102 [SEP], 0 padding); the task model embeds row b for task TASK_IDS[b].
IDS = np.array([[101, 7592, 2088, 2003, 1037, 3231, 102],
                [101, 4937, 1997, 11924, 102, 0, 0],
                [101, 2054, 102, 0, 0, 0, 0]], dtype=np.int64)
MASK = (IDS != 0).astype(np.int64)
TASK_IDS = np.array([0, 2, 1], dtype=np.int64)  # search_query, symmetric, search_document
TEXT = "which experts fire?"

GOLDEN = {  # recorded from embedder/ before embedder.modes (as of e44a7c4): rows' first 8 dims
    "topk/torch": [[0.60273, 0.13582, 0.07605, -0.00498, 0.01569, -0.00072, -0.01223, -0.03235],
                   [0.56877, 0.17442, 0.1813, 0.00045, -0.05893, -0.03258, 0.0565, -0.10527],
                   [0.65538, 0.17742, 0.1765, -0.04998, -0.04388, -0.09147, -0.01553, 0.03017]],
    "topk/fused": [[0.60273, 0.13583, 0.07605, -0.00498, 0.01569, -0.00072, -0.01223, -0.03235],
                   [0.56877, 0.17442, 0.1813, 0.00045, -0.05893, -0.03258, 0.0565, -0.10526],
                   [0.65538, 0.17742, 0.1765, -0.04998, -0.04388, -0.09147, -0.01553, 0.03017]],
    "topk/gather": [[0.60273, 0.13582, 0.07605, -0.00498, 0.01569, -0.00072, -0.01223, -0.03235],
                    [0.56877, 0.17442, 0.1813, 0.00045, -0.05893, -0.03258, 0.0565, -0.10527],
                    [0.65538, 0.17742, 0.1765, -0.04998, -0.04388, -0.09147, -0.01553, 0.03017]],
    "topk/dense": [[0.60273, 0.13582, 0.07605, -0.00498, 0.01569, -0.00072, -0.01223, -0.03235],
                   [0.56877, 0.17442, 0.1813, 0.00045, -0.05893, -0.03258, 0.0565, -0.10527],
                   [0.65538, 0.17742, 0.1765, -0.04998, -0.04388, -0.09147, -0.01553, 0.03017]],
    "topk/int8": [[0.60264, 0.13597, 0.07605, -0.00486, 0.01578, -0.00088, -0.0122, -0.03243],
                  [0.56878, 0.17449, 0.18138, 0.00064, -0.05881, -0.0325, 0.05655, -0.10539],
                  [0.65532, 0.1776, 0.17639, -0.05006, -0.0439, -0.09145, -0.01549, 0.03]],
    "task/torch": [[0.52395, 0.07404, 0.12083, -0.08401, 0.04793, -0.0312, 0.00426, -0.02787],
                   [0.59487, 0.1675, 0.29722, -0.00997, -0.05156, -0.03886, 0.03865, -0.10945],
                   [0.54588, 0.12953, 0.17946, -0.04254, -0.09272, -0.08437, 0.03833, 0.07469]],
    "task/fused": [[0.52396, 0.07404, 0.12082, -0.084, 0.04794, -0.0312, 0.00425, -0.02787],
                   [0.59487, 0.16749, 0.29722, -0.00996, -0.05154, -0.03885, 0.03865, -0.10944],
                   [0.5459, 0.12954, 0.17947, -0.04254, -0.0927, -0.08438, 0.03833, 0.07468]],
    "task/gather": [[0.52395, 0.07404, 0.12083, -0.08401, 0.04793, -0.0312, 0.00426, -0.02787],
                    [0.59487, 0.1675, 0.29722, -0.00997, -0.05156, -0.03886, 0.03865, -0.10945],
                    [0.54588, 0.12953, 0.17946, -0.04254, -0.09272, -0.08437, 0.03833, 0.07469]],
    "task/dense": [[0.52395, 0.07404, 0.12083, -0.08401, 0.04793, -0.0312, 0.00426, -0.02787],
                   [0.59487, 0.1675, 0.29722, -0.00997, -0.05156, -0.03886, 0.03865, -0.10945],
                   [0.54588, 0.12953, 0.17946, -0.04254, -0.09272, -0.08437, 0.03833, 0.07469]],
    "task/int8": [[0.52419, 0.07418, 0.12007, -0.08375, 0.04793, -0.03154, 0.00386, -0.02808],
                  [0.59562, 0.16667, 0.29741, -0.01013, -0.0516, -0.03852, 0.03854, -0.10926],
                  [0.5457, 0.12947, 0.17992, -0.04248, -0.09235, -0.08476, 0.03806, 0.07369]],
}
ROUTE_GOLDEN = {  # the topk model's first 6 tokens of TEXT: top-2 expert ids and weights, as recorded
    "experts": [[3, 0], [3, 0], [0, 3], [3, 2], [3, 1], [3, 2]],
    "weights": [[0.99785, 0.00215], [0.96823, 0.03177], [0.88695, 0.11305],
                [0.99533, 0.00467], [0.90309, 0.09691], [0.99211, 0.00789]],
}


def torch_vectors(folder) -> np.ndarray:
    model = MoeBertModel.from_pretrained(folder).eval()
    kw = {"task_ids": torch.from_numpy(TASK_IDS)} if model.config.has_task_layers else {}
    ids, mask = torch.from_numpy(IDS), torch.from_numpy(MASK)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, **kw).last_hidden_state  # (B, T, H)
    return truncate_normalize(mean_pool(hidden, mask)).numpy()  # (B, H)


def onnx_vectors(folder, variant: str) -> np.ndarray:
    session = ort.InferenceSession(str(folder / "onnx" / ONNX_FILES[variant]), providers=["CPUExecutionProvider"])
    feed = {"input_ids": IDS, "attention_mask": MASK}
    if "task_ids" in {i.name for i in session.get_inputs()}:
        feed["task_ids"] = TASK_IDS
    hidden = session.run(["last_hidden_state"], feed)[0]  # (B, T, H)
    m = MASK[..., None].astype(np.float32)  # (B, T, 1)
    e = (hidden * m).sum(1) / m.sum(1)  # (B, H)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


def head(vectors: np.ndarray) -> np.ndarray:
    return np.round(vectors[:, :8].astype(np.float64), 5)  # (B, 8)


@pytest.fixture(scope="module")
def folders(tiny_model_dir, tiny_task_model_dir):
    return {"topk": tiny_model_dir, "task": tiny_task_model_dir}


def _print(name: str, arr) -> None:
    if os.environ.get("MOESEARCH_PRINT_GOLDEN"):
        print(f"    {name!r}: {np.asarray(arr).tolist()},")


@pytest.mark.parametrize("mode", ["topk", "task"])
def test_torch_and_every_onnx_file_match_the_recorded_vectors(folders, mode):
    folder = folders[mode]
    ref = torch_vectors(folder)
    _print(f"{mode}/torch", head(ref))
    if GOLDEN:
        np.testing.assert_allclose(head(ref), GOLDEN[f"{mode}/torch"], atol=ATOL["torch"], rtol=0)
    for variant in VARIANTS:
        got = onnx_vectors(folder, variant)
        assert (ref * got).sum(-1).min() >= BOUNDS[variant], (mode, variant)  # ONNX == torch per file
        _print(f"{mode}/{variant}", head(got))
        if GOLDEN:
            np.testing.assert_allclose(head(got), GOLDEN[f"{mode}/{variant}"], atol=ATOL[variant], rtol=0,
                                       err_msg=f"{mode}/{variant}")
    assert GOLDEN or os.environ.get("MOESEARCH_PRINT_GOLDEN"), "no golden values recorded"


def test_runtime_routing_panel_matches_the_recorded_choices(folders):
    """The topk model's routing panel (router logits -> numpy top-k) on the fused and gather files; the task model
    reports its task layer and no router."""
    for variant in ("fused", "gather"):
        r = Embedder(folders["topk"], device="cpu", variant=variant).route(TEXT)
        assert r.layers == [1] and r.num_experts == 4 and r.weights.shape == r.experts.shape == (1, len(r.tokens), 2)
        _print(f"route/{variant}/experts", r.experts[0, :6])
        _print(f"route/{variant}/weights", np.round(r.weights[0, :6].astype(np.float64), 5))
        if ROUTE_GOLDEN:
            np.testing.assert_array_equal(r.experts[0, :6], ROUTE_GOLDEN["experts"])
            np.testing.assert_allclose(r.weights[0, :6], ROUTE_GOLDEN["weights"], atol=2e-5, rtol=0)
    task = Embedder(folders["task"], device="cpu", variant="gather")
    r = task.route(TEXT, task="symmetric")
    assert (task.moe_mode, r.layers, r.task_layers, r.task, r.experts.shape) == ("task", [], (1,), "symmetric",
                                                                                 (0, len(r.tokens), 1))
    assert ROUTE_GOLDEN or os.environ.get("MOESEARCH_PRINT_GOLDEN"), "no golden values recorded"
