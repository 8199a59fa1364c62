"""ONNX-level pieces of the export: the fused MoE op, its layout check, graph rewrites. No torch here.

ORT's ``com.microsoft::MoE`` (fused routing, CPU fp32 and CUDA fp32/fp16/bf16 kernels since 1.23):
inputs ``input (N, H)``, ``router_probs (N, E)`` (router *logits*: the kernel does softmax over all
experts, then top-k, and ``normalize_routing_weights=1`` renormalises the k weights), ``fc1 [E, I, H]``,
``fc1_bias [E, I]``, ``fc2 [E, H, I]``, ``fc2_bias [E, H]``. Its ``gelu`` is the tanh approximation.
Before 1.23 the weights were ``fc1 [E, H, I]``/``fc2 [E, I, H]``; ORT still accepts that layout when
shapes allow it and computes garbage, so `check_moe_nodes` refuses it: by shape, and by running each
node on a probe input against a numpy reference (which also catches the square case I == H).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .routing import top_k_routing

MOE_DOMAIN = "com.microsoft"


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def moe_reference(x, logits, fc1, b1, fc2, b2, top_k: int, normalize: bool = True) -> np.ndarray:
    """numpy reference of the fused op (new layout), used to validate exported nodes."""
    w, top = top_k_routing(logits, top_k, normalize)  # (N, k), (N, k)
    out = np.zeros_like(x)
    for n in range(x.shape[0]):
        for j, e in enumerate(top[n]):
            h = gelu_tanh(fc1[e] @ x[n] + b1[e])  # (I,)
            out[n] += w[n, j] * (fc2[e] @ h + b2[e])
    return out


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def moe_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "MoE" and n.domain == MOE_DOMAIN]


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def check_moe_nodes(model: onnx.ModelProto, hidden: int, intermediate: int, num_experts: int,
                    expected: list[tuple[np.ndarray, ...]] | None = None, *, probe_tokens: int = 5,
                    atol: float = 1e-3) -> int:
    """Refuse MoE nodes whose weights are not in ORT >= 1.23 layout; returns the number checked.

    Three checks per node: shapes ([E, I, H] / [E, H, I]); when ``expected`` (per node, the source
    model's ``(fc1, fc1_bias, fc2, fc2_bias)`` in the new layout) is given, the stored values, which
    catches a transposed square layout (I == H); and a probe run through this onnxruntime against a
    numpy reference, which catches a runtime that reads the layout differently.
    """
    import onnxruntime as ort

    inits = initializers(model)
    nodes = moe_nodes(model)
    want = {2: (num_experts, intermediate, hidden), 4: (num_experts, hidden, intermediate)}
    old = {2: (num_experts, hidden, intermediate), 4: (num_experts, intermediate, hidden)}
    if expected is not None and len(expected) != len(nodes):
        raise ValueError(f"{len(nodes)} MoE nodes in the graph, {len(expected)} MoE layers in the model")
    for n_idx, node in enumerate(nodes):
        names = list(node.input)
        if len(names) < 6 or any(names[i] not in inits for i in (2, 3, 4, 5)):
            raise ValueError(f"MoE node {node.name}: fc1/fc2 weights and biases must be initializers")
        arrays = {i: numpy_helper.to_array(inits[names[i]]).astype(np.float32) for i in (2, 3, 4, 5)}
        for i, label in ((2, "fc1_experts_weights"), (4, "fc2_experts_weights")):
            shape = tuple(arrays[i].shape)
            if shape != want[i]:
                hint = " (the pre-1.23 layout; ORT >= 1.23 wants fc1 [E, I, H], fc2 [E, H, I])" \
                    if shape == old[i] else ""
                raise ValueError(f"MoE node {node.name}: {label} has shape {shape}, expected {want[i]}{hint}")
        if expected is not None:
            for i, ref in zip((2, 3, 4, 5), expected[n_idx], strict=True):
                if arrays[i].shape != ref.shape or not np.allclose(arrays[i], ref, atol=1e-6, rtol=1e-5):
                    raise ValueError(f"MoE node {node.name}: input {i} does not hold the experts' weights in "
                                     "ORT >= 1.23 layout (fc1 [E, I, H], fc2 [E, H, I])")
        k = int(_attr(node, "k", 1))
        normalize = bool(_attr(node, "normalize_routing_weights", 0))
        act = _attr(node, "activation_type", b"relu")
        act = act.decode() if isinstance(act, bytes) else act
        if act != "gelu":
            raise ValueError(f"MoE node {node.name}: activation_type {act!r}, expected 'gelu'")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((probe_tokens, hidden)).astype(np.float32)
        logits = rng.standard_normal((probe_tokens, num_experts)).astype(np.float32)
        probe = single_moe_model(arrays[2], arrays[3], arrays[4], arrays[5], k, normalize)
        sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x, "logits": logits})[0]
        ref = moe_reference(x, logits, arrays[2], arrays[3], arrays[4], arrays[5], k, normalize)
        err = float(np.abs(got - ref).max())
        if not np.isfinite(err) or err > atol * max(1.0, float(np.abs(ref).max())):
            raise ValueError(f"MoE node {node.name}: ORT output differs from the reference by {err:.3g}; "
                             "the expert weights are not in the layout this ORT expects")
    return len(nodes)


def single_moe_model(fc1, b1, fc2, b2, top_k: int, normalize: bool, dtype=onnx.TensorProto.FLOAT
                     ) -> onnx.ModelProto:
    """A one-node graph ``MoE(x, logits)`` with the given weights as initializers."""
    E, hidden = fc1.shape[0], fc2.shape[1]
    node = helper.make_node("MoE", ["x", "logits", "fc1", "b1", "fc2", "b2"], ["y"], domain=MOE_DOMAIN,
                            k=int(top_k), normalize_routing_weights=int(normalize), activation_type="gelu")
    graph = helper.make_graph(
        [node], "moe_probe",
        [helper.make_tensor_value_info("x", dtype, ["N", hidden]),
         helper.make_tensor_value_info("logits", dtype, ["N", E])],
        [helper.make_tensor_value_info("y", dtype, ["N", hidden])],
        [numpy_helper.from_array(a, n) for a, n in ((fc1, "fc1"), (b1, "b1"), (fc2, "fc2"), (b2, "b2"))])
    return helper.make_model(graph, ir_version=10,
                             opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MOE_DOMAIN, 1)])


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite ``Gemm(x, W, b, transB=1)`` with initializer W as ``MatMul(x, W.T) + b``.

    ORT's dynamic quantizer quantizes MatMul but not Gemm, and torch exports a Linear on 2-D input
    (every expert in the gather/scatter graph) as Gemm. Returns the number of nodes rewritten.
    """
    inits = initializers(model)
    new_nodes, count = [], 0
    for node in model.graph.node:
        ok = (node.op_type == "Gemm" and node.domain in ("", "ai.onnx") and len(node.input) >= 2
              and node.input[1] in inits and _attr(node, "transA", 0) == 0
              and float(_attr(node, "alpha", 1.0)) == 1.0 and float(_attr(node, "beta", 1.0)) == 1.0)
        if not ok:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if _attr(node, "transB", 0):
            w = w.T
        w_name = f"{node.input[1]}__T" if _attr(node, "transB", 0) else node.input[1]
        if w_name not in inits:
            t = numpy_helper.from_array(np.ascontiguousarray(w), w_name)
            model.graph.initializer.append(t)
            inits[w_name] = t
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}__mm" if has_bias else node.output[0]
        new_nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{node.name}_MatMul"))
        if has_bias:
            new_nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]],
                                              name=f"{node.name}_Add"))
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return count


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    del model.metadata_props[:]
    for k, v in sorted(meta.items()):
        model.metadata_props.add(key=k, value=str(v))
