"""torch -> ONNX: the files the runtime loads, written into ``MODEL_DIR/onnx/``.

* ``model.onnx``: fp32, each MoE block one ``com.microsoft::MoE`` node (fused routing; ORT's CUDA kernel
  on a GPU, its CPU kernel here). ``model.fp16.onnx`` on request (the fused op has fp16 kernels on CUDA only).
* ``model.cpu-int8.onnx``: the sparse gather/scatter graph (NonZero + GatherND + ScatterND per expert),
  ORT-optimised and dynamically quantised to int8, for CPU hosts.
* ``model.gather-fp32.onnx`` / ``model.dense-fp32.onnx`` on request: the same gather/scatter graph in fp32,
  and every expert computed on every token then masked (the benchmark baseline).  ``embedder prepare`` also
  writes the gather file: it is the CPU's fp32 candidate, timed against int8 there (embedder.cpu_variant).

Every file has the dynamic axes (batch, sequence), outputs ``last_hidden_state`` plus one
``router_logits_{layer}`` per learned (topk) MoE layer, and carries config.json + moesearch.json in its metadata.
A task-expert (MoTE) model takes one more input, ``task_ids`` (batch,) int64, and each task layer computes one
expert per sequence: in the gather/scatter graph by the same NonZero + gather + scatter as learned routing,
in the fused file as a ``com.microsoft::MoE`` node with k = 1 whose router logits are the task one-hot.
What differs per mode (extra inputs and their example values, the fused node's logits, which layers output
router logits) is asked of the mode's strategy object (`embedder.modes`).
``manifest.json`` lists each file with its sha256 and the sha256 of the weights it came from.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .model import MoeBertModel, SelfAttention
from .moe import MoEBlock
from .onnx_graph import MOE_DOMAIN, check_moe_nodes, gemm_to_matmul, set_metadata
from .settings import ONNX_FILES, EmbeddingSettings, sha256

log = logging.getLogger(__name__)

FUSED, FUSED_FP16, INT8, GATHER, DENSE = "fused", "fused-fp16", "int8", "gather", "dense"
DEFAULT_VARIANTS = (FUSED, INT8)
MANIFEST = "manifest.json"
# Bump when the exported graphs change shape or semantics, so `prepare` rebuilds stale files.
EXPORT_FORMAT = 3


class FusedMoE(nn.Module):
    """Stand-in for `MoEBlock` at export: same router (or the mode's logits), expert weights stacked in ORT's
    layout. Returns ``(hidden, router_logits)`` as the block does (logits only for a learned mode)."""

    def __init__(self, block: MoEBlock):
        super().__init__()
        self.router, self.mode, self.tasks = block.router, block.mode, block.tasks
        self.num_experts, self.top_k, self.normalize = block.num_experts, block.top_k, block.normalize
        ex = block.experts
        self.register_buffer("fc1", torch.stack([e.fc1.weight for e in ex]).detach())  # (E, I, H)
        self.register_buffer("fc1_bias", torch.stack([e.fc1.bias for e in ex]).detach())  # (E, I)
        self.register_buffer("fc2", torch.stack([e.fc2.weight for e in ex]).detach())  # (E, H, I)
        self.register_buffer("fc2_bias", torch.stack([e.fc2.bias for e in ex]).detach())  # (E, H)

    def forward(self, hidden: torch.Tensor, token_mask: torch.Tensor | None = None,
                task_ids: torch.Tensor | None = None):
        shape = hidden.shape
        x = hidden.reshape(-1, shape[-1])  # (N, H)
        logits = self.mode.fused_logits(self, x, task_ids, shape)  # (N, E): router's, or the task one-hot
        y = torch.onnx.ops.symbolic(
            f"{MOE_DOMAIN}::MoE", (x, logits, self.fc1, self.fc1_bias, self.fc2, self.fc2_bias),
            {"k": self.top_k, "normalize_routing_weights": int(self.normalize), "activation_type": "gelu"},
            dtype=x.dtype, shape=x.shape, version=1)  # (N, H)
        return y.reshape(shape), logits if self.mode.learned else None


class FusedAttention(nn.Module):
    """Stand-in for `SelfAttention` at export: one ``com.microsoft::Attention`` node (QKV projection,
    scaled dot-product, key-padding mask), which ORT runs as a fused kernel on CPU and CUDA and the
    dynamic quantizer turns into ``QAttention``."""

    def __init__(self, attn: SelfAttention):
        super().__init__()
        self.heads = attn.heads
        w = torch.cat([attn.query.weight, attn.key.weight, attn.value.weight], dim=0)  # (3H, H)
        self.register_buffer("qkv_weight", w.T.contiguous().detach())  # (H, 3H)
        self.register_buffer("qkv_bias", torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]).detach())

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        mask_index = attn_mask[:, 0, 0, :].to(torch.int32)  # (B, T): 1 attend, 0 padding
        return torch.onnx.ops.symbolic(
            f"{MOE_DOMAIN}::Attention", (x, self.qkv_weight, self.qkv_bias, mask_index), {"num_heads": self.heads},
            dtype=x.dtype, shape=x.shape, version=1)  # (B, T, H)


def expert_weights(model: MoeBertModel) -> list[tuple]:
    """Per MoE layer, (fc1 [E, I, H], fc1_bias, fc2 [E, H, I], fc2_bias) as numpy: what a fused node must hold."""
    out = []
    for block in model.expert_blocks():
        fused = FusedMoE(block)
        out.append(tuple(t.float().numpy() for t in (fused.fc1, fused.fc1_bias, fused.fc2, fused.fc2_bias)))
    return out


class ExportWrapper(nn.Module):
    """(input_ids, attention_mask[, task_ids]) -> (last_hidden_state, *router_logits) as plain tensors; the
    extra input is the mode's (`embedder.modes.ROUTING_INPUTS`)."""

    def __init__(self, model: MoeBertModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task_ids: torch.Tensor | None = None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, task_ids=task_ids)
        return (out.last_hidden_state, *out.router_logits)


def prepare(model: MoeBertModel, variant: str) -> MoeBertModel:
    """A copy of ``model`` (eval, fp32) set up for one export variant."""
    m = copy.deepcopy(model).float().eval()
    for layer in m.encoder.layer:
        layer.attention.self = FusedAttention(layer.attention.self)
    m.set_dispatch("dense" if variant == DENSE else "sparse")
    if variant in (FUSED, FUSED_FP16):
        for layer in m.encoder.layer:
            if layer.is_moe:
                layer.moe = FusedMoE(layer.moe)
    return m


def output_names(model: MoeBertModel) -> list[str]:
    return ["last_hidden_state"] + [f"router_logits_{i}" for i in model.router_layers()]


def input_names(model: MoeBertModel) -> list[str]:
    return ["input_ids", "attention_mask", *model.config.routing_inputs]


# What the export toolchain prints on every run that says nothing about this export (`prepare` on a fresh clone
# printed ~20 such lines): torch's registry of torchvision ops we do not use, its note that the two dynamic axes
# share a constraint, a deprecation inside torch.export, and the quantizer's advice on image-model pre-processing.
QUIET_LOGS = ("torchvision is not installed", "Please consider to run pre-processing before quantization")
QUIET_WARNINGS = ((UserWarning, r"# The axis name: \w+ will not be used"),
                  (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"))


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(QUIET_LOGS)


@contextlib.contextmanager
def quiet_toolchain():
    """Drop ``QUIET_LOGS`` / ``QUIET_WARNINGS`` while exporting; every other warning still shows."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx._internal.exporter._registration")]
    noise = _Quiet()
    with warnings.catch_warnings():
        for category, message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        for logger in loggers:
            logger.addFilter(noise)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(noise)


def to_onnx(model: MoeBertModel, variant: str, path: Path) -> Path:
    with quiet_toolchain():
        return _to_onnx(model, variant, path)


def _to_onnx(model: MoeBertModel, variant: str, path: Path) -> Path:
    m = prepare(model, variant)
    ids = torch.randint(1000, 2000, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    extra = model.config.moe_strategy.example_inputs(model.config, ids.shape[0]) if model.config.moe_layers else {}
    if list(extra) != list(model.config.routing_inputs):
        raise ValueError(f"mode {model.config.moe_mode}: example inputs {list(extra)} are not its inputs "
                         f"{list(model.config.routing_inputs)}")
    args = (ids, mask, *extra.values())
    shapes = ({0: batch, 1: seq}, {0: batch, 1: seq}, *({0: batch} for _ in extra))  # routing inputs: (B,)
    program = torch.onnx.export(ExportWrapper(m).eval(), args, dynamo=True, optimize=True, verbose=False,
                                input_names=input_names(model), output_names=output_names(model),
                                dynamic_shapes=shapes)
    program.save(str(path))
    return path


def cpu_int8(src: Path, dst: Path) -> None:
    """Gather/scatter fp32 -> Gemm rewritten to MatMul -> ORT graph optimisation -> dynamic int8."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        proto = onnx.load(str(src))
        gemm_to_matmul(proto)
        plain = Path(tmp) / "plain.onnx"
        onnx.save(proto, str(plain))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(plain), opts, providers=["CPUExecutionProvider"])
        proto = onnx.load(opts.optimized_model_filepath)
        del proto.graph.value_info[:]  # stale shape info from the dynamo export breaks the quantizer
        onnx.save(proto, opts.optimized_model_filepath)
        with quiet_toolchain():
            quantize_dynamic(opts.optimized_model_filepath, str(dst), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Attention"], per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def weights_sha256(model_dir: Path) -> str:
    return sha256(model_dir / "model.safetensors")


def export(model_dir: str | Path, variants: tuple[str, ...] = DEFAULT_VARIANTS, out_dir: str | Path | None = None
           ) -> dict:
    """Export ``variants`` of the model folder into ``model_dir/onnx`` and write the manifest."""
    model_dir = Path(model_dir)
    unknown = set(variants) - set(ONNX_FILES)
    if unknown:
        raise ValueError(f"unknown export variants {sorted(unknown)}; allowed: {sorted(ONNX_FILES)}")
    out = Path(out_dir) if out_dir else model_dir / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    model = MoeBertModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    settings = EmbeddingSettings.load(model_dir)
    cfg = model.config
    meta = {"moesearch.config": cfg.to_json_string(use_diff=False),
            "moesearch.settings": (model_dir / "moesearch.json").read_text(),
            "moesearch.model_id": settings.model_id, "moesearch.pooling": settings.pooling,
            **{f"moesearch.arch.{k}": v for k, v in cfg.metadata().items()}}
    manifest = read_manifest(out)
    if manifest.get("weights_sha256") != weights_sha256(model_dir) or manifest.get("format") != EXPORT_FORMAT:
        manifest = {}  # files from other weights or another exporter must not be listed as current
    manifest.update({"model_id": settings.model_id, "weights_sha256": weights_sha256(model_dir),
                     "format": EXPORT_FORMAT, "onnxruntime_min": "1.23"})
    files = manifest.setdefault("files", {})
    with tempfile.TemporaryDirectory() as tmp:
        gather_path = Path(tmp) / "gather.onnx"
        if GATHER in variants or INT8 in variants:  # the int8 file is built from the gather/scatter graph
            to_onnx(model, GATHER, gather_path)
        for variant in dict.fromkeys(variants):
            t0 = time.time()
            path = out / ONNX_FILES[variant]
            if variant == GATHER:
                proto = onnx.load(str(gather_path))
            elif variant == INT8:
                cpu_int8(gather_path, path)
                proto = onnx.load(str(path))
            else:
                to_onnx(model, FUSED if variant == FUSED_FP16 else variant, path)
                proto = onnx.load(str(path))
                if variant in (FUSED, FUSED_FP16):
                    check_moe_nodes(proto, cfg.hidden_size, cfg.intermediate_size, cfg.num_experts,
                                    expected=expert_weights(model))
                if variant == FUSED_FP16:
                    proto = to_fp16(proto)
            set_metadata(proto, {**meta, "moesearch.variant": variant})
            onnx.save(proto, str(path))
            files[ONNX_FILES[variant]] = {"variant": variant, "sha256": sha256(path), "bytes": path.stat().st_size}
            log.info("wrote %s (%s, %.1f MB) in %.1fs", path, variant, path.stat().st_size / 1e6, time.time() - t0)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and activations, fp32 graph inputs/outputs (the CUDA EP's MoE kernel takes fp16)."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    del proto.graph.value_info[:]
    model = OnnxModel(proto)
    model.convert_float_to_float16(keep_io_types=True, disable_shape_infer=True,
                                   op_block_list=["LayerNormalization", "Softmax", "TopK"])
    model.topological_sort()
    return model.model


def read_manifest(onnx_dir: Path) -> dict:
    path = Path(onnx_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def is_current(model_dir: str | Path, variants: tuple[str, ...] = DEFAULT_VARIANTS) -> bool:
    """True when ``model_dir/onnx`` holds every variant, exported from the current weights, unmodified."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir / "onnx")
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("weights_sha256") != weights_sha256(model_dir):
        return False
    files = manifest.get("files", {})
    for v in variants:
        entry, path = files.get(ONNX_FILES[v]), model_dir / "onnx" / ONNX_FILES[v]
        if not entry or not path.is_file() or entry["bytes"] != path.stat().st_size:
            return False
    return True
