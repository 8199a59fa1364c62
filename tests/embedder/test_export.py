"""Exported ONNX files against torch, the sparsity of the exported routing, and the exporter's checks."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from embedder.export import EXPORT_FORMAT, expert_weights, export, is_current, sha256
from embedder.model import MoeBertModel, mean_pool, truncate_normalize
from embedder.onnx_graph import check_moe_nodes, moe_nodes, single_moe_model
from embedder.settings import ONNX_FILES

SHAPES = [(1, 1), (3, 7), (2, 13), (2, 128)]  # 1x1, odd lengths, the tiny model's max length
BOUNDS = {"fused": 0.9999, "gather": 0.9999, "dense": 0.9999, "int8": 0.99}


def batch(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 29000, shape, generator=g)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    if shape[0] > 1:  # ragged: later rows shorter
        for r in range(1, shape[0]):
            mask[r, max(1, shape[1] - 3 * r):] = 0
    return ids, mask


def torch_embed(model, ids, mask):
    with torch.no_grad():
        out = model(ids, mask)
    return truncate_normalize(mean_pool(out.last_hidden_state, mask)).numpy(), out


def onnx_embed(session, ids, mask):
    h = session.run(["last_hidden_state"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    m = mask.numpy()[..., None].astype(np.float32)
    e = (h * m).sum(1) / m.sum(1)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_torch(tiny_model_dir):
    return MoeBertModel.from_pretrained(tiny_model_dir).eval()


@pytest.mark.parametrize("variant", ["fused", "gather", "dense", "int8"])
@pytest.mark.parametrize("shape", SHAPES)
def test_onnx_matches_torch(tiny_model_dir, tiny_torch, variant, shape):
    session = ort.InferenceSession(str(tiny_model_dir / "onnx" / ONNX_FILES[variant]),
                                   providers=["CPUExecutionProvider"])
    ids, mask = batch(shape)
    ref, out = torch_embed(tiny_torch, ids, mask)
    got = onnx_embed(session, ids, mask)
    cos = (ref * got).sum(-1)
    assert cos.min() >= BOUNDS[variant], (variant, shape, cos)
    if variant != "int8":  # router logits are graph outputs too (the app charts them)
        names = [o.name for o in session.get_outputs()]
        assert names == ["last_hidden_state", "router_logits_1"]
        logits = session.run(["router_logits_1"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        np.testing.assert_allclose(logits, out.router_logits[0].numpy(), atol=1e-4)


def expert_inputs(proto):
    """Names of the tensors fed into each expert's first projection (fc1), by layer."""
    inits = {t.name for t in proto.graph.initializer}
    found = []
    for node in proto.graph.node:
        if node.op_type in ("Gemm", "MatMul") and any(".fc1." in i and i in inits for i in node.input):
            found.append(next(i for i in node.input if i not in inits))
    return found


@pytest.mark.parametrize("variant, rows_per_token", [("gather", 2), ("dense", 4)])
def test_exported_routing_is_sparse(tiny_model_dir, variant, rows_per_token):
    """Run the graph with each expert's input exposed: in the gather/scatter file the experts together see
    exactly k=2 rows per real token (padding none); in the dense baseline every expert sees every token."""
    proto = onnx.load(str(tiny_model_dir / "onnx" / ONNX_FILES[variant]))
    names = expert_inputs(proto)
    assert len(names) == 4  # one MoE layer x 4 experts, each its own projection
    counts = {n.op_type for n in proto.graph.node}
    assert ({"NonZero", "GatherND", "ScatterND"} <= counts) == (variant == "gather")
    for name in names:
        proto.graph.output.add(name=name)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ids, mask = batch((3, 11))
    outs = session.run(names, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    rows = sum(o.shape[0] for o in outs)
    tokens = int(mask.sum()) if variant == "gather" else mask.numel()
    assert rows == rows_per_token * tokens


def test_fused_file_has_one_moe_node_per_layer(tiny_model_dir, tiny_torch):
    proto = onnx.load(str(tiny_model_dir / "onnx" / ONNX_FILES["fused"]))
    nodes = moe_nodes(proto)
    assert len(nodes) == len(tiny_torch.config.moe_layers)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["k"] == 2 and attrs["normalize_routing_weights"] == 1 and attrs["activation_type"] == b"gelu"
    inits = {t.name: t for t in proto.graph.initializer}
    assert tuple(inits[nodes[0].input[2]].dims) == (4, 64, 32)  # fc1 [E, I, H]
    assert tuple(inits[nodes[0].input[4]].dims) == (4, 32, 64)  # fc2 [E, H, I]
    assert not any(".experts." in n for n in inits)  # no per-expert weights outside the fused node


def test_checks_refuse_the_pre_1_23_weight_layout(tiny_model_dir, tiny_torch):
    proto = onnx.load(str(tiny_model_dir / "onnx" / ONNX_FILES["fused"]))
    assert check_moe_nodes(proto, 32, 64, 4, expected=expert_weights(tiny_torch)) == 1
    node = moe_nodes(proto)[0]
    inits = {t.name: t for t in proto.graph.initializer}
    for i in (2, 4):  # old layout: fc1 [E, H, I], fc2 [E, I, H]
        arr = numpy_helper.to_array(inits[node.input[i]])
        inits[node.input[i]].CopyFrom(numpy_helper.from_array(arr.transpose(0, 2, 1).copy(), node.input[i]))
    with pytest.raises(ValueError, match="pre-1.23 layout"):
        check_moe_nodes(proto, 32, 64, 4)


def test_checks_refuse_transposed_square_weights_by_running_them():
    """With I == H the old layout has the right shapes and ORT runs it silently: the check compares the
    stored weights with the source model's and refuses."""
    rng = np.random.default_rng(0)
    E, H = 4, 16
    fc1, fc2 = (rng.standard_normal((E, H, H)).astype(np.float32) for _ in range(2))
    b1, b2 = (rng.standard_normal((E, H)).astype(np.float32) for _ in range(2))
    good = single_moe_model(fc1, b1, fc2, b2, 2, True)
    assert check_moe_nodes(good, H, H, E, expected=[(fc1, b1, fc2, b2)]) == 1
    bad = single_moe_model(fc1.transpose(0, 2, 1).copy(), b1, fc2.transpose(0, 2, 1).copy(), b2, 2, True)
    ort.InferenceSession(bad.SerializeToString(), providers=["CPUExecutionProvider"])  # ORT takes it as is
    with pytest.raises(ValueError, match="does not hold the experts' weights"):
        check_moe_nodes(bad, H, H, E, expected=[(fc1, b1, fc2, b2)])


def test_probe_refuses_a_kernel_that_reads_weights_differently(monkeypatch):
    """If this onnxruntime computed something else than the documented op (e.g. an old layout), the probe
    run against the numpy reference refuses the file."""
    import embedder.onnx_graph as g

    rng = np.random.default_rng(1)
    fc1, b1 = rng.standard_normal((4, 24, 8)).astype(np.float32), rng.standard_normal((4, 24)).astype(np.float32)
    fc2, b2 = rng.standard_normal((4, 8, 24)).astype(np.float32), rng.standard_normal((4, 8)).astype(np.float32)
    proto = single_moe_model(fc1, b1, fc2, b2, 2, True)
    assert check_moe_nodes(proto, 8, 24, 4) == 1
    real = g.moe_reference
    monkeypatch.setattr(g, "moe_reference", lambda x, lg, f1, c1, f2, c2, k, n=True: real(x, lg, f1, c1, f2, c2,
                                                                                        k, not n))
    with pytest.raises(ValueError, match="differs from the reference"):
        check_moe_nodes(proto, 8, 24, 4)


def test_metadata_and_manifest(tiny_model_dir):
    manifest = json.loads((tiny_model_dir / "onnx" / "manifest.json").read_text())
    assert manifest["format"] == EXPORT_FORMAT
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(tiny_model_dir / "onnx" / name)
        meta = {p.key: p.value for p in onnx.load(str(tiny_model_dir / "onnx" / name),
                                                  load_external_data=False).metadata_props}
        assert meta["moesearch.variant"] == entry["variant"]
        assert json.loads(meta["moesearch.config"])["num_experts"] == 4
        assert json.loads(meta["moesearch.settings"])["pooling"] == "mean"
        assert meta["moesearch.arch.moe.num_experts_per_tok"] == "2"
    assert is_current(tiny_model_dir, ("fused", "int8"))


def test_is_current_notices_new_weights(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert is_current(copy)
    model = MoeBertModel.from_pretrained(copy)
    with torch.no_grad():
        model.moe_blocks()[0].router.weight.add_(0.1)
    model.save_pretrained(copy)
    assert not is_current(copy)


def test_export_rejects_unknown_variant(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown export variants"):
        export(tiny_model_dir, ("fused", "bf17"))


def test_fp16_variant_for_cuda(tiny_model_dir, tmp_path):
    export(tiny_model_dir, ("fused-fp16",), out_dir=tmp_path)
    proto = onnx.load(str(tmp_path / ONNX_FILES["fused-fp16"]))
    onnx.checker.check_model(proto)
    inits = {t.name: t for t in proto.graph.initializer}
    node = moe_nodes(proto)[0]
    assert inits[node.input[2]].data_type == onnx.TensorProto.FLOAT16
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept


@pytest.mark.parametrize("activation, max_diff", [("gelu", 2e-3), ("gelu_tanh", 2e-5)])
def test_gelu_choice_bounds_the_fused_difference(tiny_dense_dir, tmp_path, activation, max_diff):
    """Experts use exact (erf) GELU like the dense base, so upcycling is exact; ORT's fused kernel computes
    the tanh approximation. The difference this makes is bounded here; with gelu_tanh experts it vanishes."""
    from embedder.upcycle import upcycle

    out = upcycle(tmp_path / "m", tiny_dense_dir, num_experts=4, max_length=128, expert_activation=activation)
    export(out, ("fused",))
    model = MoeBertModel.from_pretrained(out).eval()
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = batch((3, 17), seed=5)
    with torch.no_grad():
        ref = model(ids, mask).last_hidden_state.numpy()
    got = session.run(["last_hidden_state"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    valid = mask.numpy().astype(bool)
    assert np.abs(ref[valid] - got[valid]).max() <= max_diff


def test_export_drops_the_toolchains_known_noise_only(tiny_torch, tmp_path, caplog):
    """`prepare` on a fresh clone printed ~20 lines of torch / quantizer chatter per model that say nothing about
    the export (QUIET_LOGS, QUIET_WARNINGS); they are dropped while exporting, other warnings are not."""
    import logging
    import warnings

    from embedder.export import GATHER, QUIET_LOGS, cpu_int8, quiet_toolchain, to_onnx

    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        cpu_int8(to_onnx(tiny_torch, GATHER, tmp_path / "gather.onnx"), tmp_path / "int8.onnx")
        with quiet_toolchain():
            warnings.warn("something else", UserWarning, stacklevel=1)
            logging.getLogger().warning("another message")
    messages = [str(w.message) for w in seen]
    assert not [m for m in messages if "will not be used" in m or "LeafSpec" in m], messages
    assert not [r for r in caplog.records if r.getMessage().startswith(QUIET_LOGS)]
    assert "something else" in messages and "another message" in caplog.messages
    assert (tmp_path / "int8.onnx").stat().st_size > 0
