"""Embedding throughput: the MoE runtime against what users would run instead, in one run.

Variants (same passages, same max length, same batch size; timed interleaved chunk by chunk so the
machine's noise hits every variant alike):
  a  sentence-transformers all-MiniLM-L6-v2 in torch (fp32)
  b  the dense base (no MoE layers) exported to ONNX int8, through the same runtime
  c  MoE model.onnx: fused com.microsoft::MoE, fp32
  d  MoE gather/scatter, fp32
  e  MoE gather/scatter, int8 (model.cpu-int8.onnx, what CPU hosts run)
  f  the same MoE with every expert computed on every token then masked, fp32
  g  task-expert (MoTE) MiniLM, upcycled with one expert per task, int8, embedding as search_document

Every variant truncates at the same max length (each length of ``--max-lengths`` is a separate round; default 512
then 256), so all do the same work; throughput is reported as texts/s and as tokens/s (real tokens, padding not
counted, after truncation: the same count for every variant, since they share the BERT uncased vocabulary and no
variant adds a prefix).

Targets: throughput e/a >= 3 at 512 and at 256, e/b >= 0.7, g/e >= 0.95 (a task model costs what the MoE does);
time d/f <= 0.45; c/f reported.  ``--profile`` adds onnxruntime's per-operator profile of (e) at each length.

    python bench/embed_throughput.py [--quick] [--json OUT] [--model DIR] [--max-lengths 512 256]
                                     [--variants a b e] [--profile] [--gemm]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"
LABELS = {"a": "sentence-transformers MiniLM-L6 (torch fp32)", "b": "dense base, ONNX int8",
          "c": "MoE fused MoE op (fp32)", "d": "MoE gather/scatter (fp32)", "e": "MoE gather/scatter (int8)",
          "f": "MoE all experts + mask (fp32)", "g": "task experts (MoTE) gather/scatter (int8)"}


def cpu_name() -> str:
    """The CPU model and its SIMD flags that matter for int8 (VNNI, AMX, AVX-512): the runtime's own reading."""
    from embedder.cpu_variant import CpuInfo

    return CpuInfo.read().describe()


def passages(n: int) -> list[str]:
    texts = []
    with open(CORPUS) as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc['title']} {doc['text']}".strip())
            if len(texts) == n:
                break
    return texts


def ensure_exports(model_dir: Path, dense_dir: Path, task_dir: Path) -> None:
    from embedder.export import export, is_current
    from embedder.upcycle import upcycle

    if not (task_dir / "config.json").is_file():
        upcycle(task_dir, moe_mode="task", model_id="minilm-task-upcycled", prefixes=False)
    if not is_current(task_dir, ("int8",)):
        export(task_dir, ("int8",))
    if not is_current(model_dir, ("fused", "int8", "gather", "dense")):
        export(model_dir, ("fused", "int8", "gather", "dense"))
    if not (dense_dir / "config.json").is_file():
        upcycle(dense_dir, moe_layers=[], model_id="minilm-dense-base", prefixes=False)
    if not is_current(dense_dir, ("int8",)):
        export(dense_dir, ("int8",))


def build_runners(model_dir: Path, dense_dir: Path, task_dir: Path, max_length: int, batch: int,
                  variants: str = "abcdefg") -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from embedder.runtime import Embedder
    from embedder.upcycle import default_dense_dir

    torch.set_num_threads(os.cpu_count() or 1)
    runners = {}
    if "a" in variants:
        st = SentenceTransformer(str(default_dense_dir()), device="cpu")
        st.max_seq_length = max_length
        runners["a"] = lambda t: st.encode(t, batch_size=batch, normalize_embeddings=True)
    if "b" in variants:
        b = Embedder(dense_dir, variant="int8", max_length=max_length)
        runners["b"] = lambda t, e=b: e.encode(t, batch_size=batch)
    for key, variant in (("c", "fused"), ("d", "gather"), ("e", "int8"), ("f", "dense")):
        if key in variants:
            emb = Embedder(model_dir, variant=variant, max_length=max_length)
            runners[key] = lambda t, e=emb: e.encode(t, batch_size=batch)
    if "g" in variants:
        g = Embedder(task_dir, variant="int8", max_length=max_length)
        runners["g"] = lambda t, e=g: e.embed(t, task="search_document", batch_size=batch)
    return runners


def token_count(model_dir: Path, texts: list[str], max_length: int) -> int:
    """Real tokens (with [CLS] and [SEP]) after truncation at ``max_length``: what every variant processes."""
    from tokenizers import Tokenizer

    from embedder.registry import resolve

    tok = Tokenizer.from_file(str(resolve(model_dir).folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return sum(len(e.ids) for e in tok.encode_batch(texts))


def profile_int8(model_dir: Path, texts: list[str], max_length: int, batch: int) -> dict[str, float]:
    """onnxruntime's per-operator time shares for (e) on a batch of 8 of ``texts`` (share of kernel time, %)."""
    import tempfile
    from collections import defaultdict

    import onnxruntime as ort

    from embedder.runtime import Embedder, _pad

    emb = Embedder(model_dir, variant="int8", max_length=max_length)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / "moesearch-embed-profile")
    session = ort.InferenceSession(str(emb.model_file), opts, providers=["CPUExecutionProvider"])
    ids, mask = _pad([e.ids for e in emb.tokenizer.encode_batch(texts[:min(batch, 8)])])  # 8: bounded time
    for _ in range(2):
        session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
    trace = Path(session.end_profiling())
    spent: dict[str, float] = defaultdict(float)
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    total = sum(spent.values()) or 1.0
    return {op: round(100 * us / total, 1) for op, us in sorted(spent.items(), key=lambda kv: -kv[1])}


def gemm_ceiling(tokens: int = 4096, hidden: int = 384, inter: int = 1536, repeats: int = 20) -> dict[str, float]:
    """What int8 can gain over torch fp32 on this CPU, before any model: the FFN's first GEMM
    ((tokens, hidden) @ (hidden, inter)) in torch fp32 and as onnxruntime's dynamically quantised int8 MatMul
    (DynamicQuantizeMatMul, per-channel weights: the op the int8 file runs), both with every core. Best of
    ``repeats``, the kinds timed in turn within each repeat so the machine's noise hits them alike; returns GOP/s
    per kind and int8 / torch fp32. GEMMs are most of both runtimes' time (the int8 file's DynamicQuantizeMatMul +
    QAttention: ~90%), so the ratio is about what int8 gains at equal FLOPs; whole-model ratios also carry each
    runtime's overhead around the GEMMs."""
    import tempfile

    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    x = rng.standard_normal((tokens, hidden)).astype(np.float32)
    w = (rng.standard_normal((hidden, inter)) / hidden ** 0.5).astype(np.float32)
    flops = 2.0 * tokens * hidden * inter

    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    torch.set_num_threads(os.cpu_count() or 1)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "ffn_gemm",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", hidden])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", inter])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
        sessions = {k: ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for k, f in
                    (("ort_fp32", src), ("ort_int8", dst))}
        kinds = {"torch_fp32": lambda: xt @ wt, **{k: lambda s=s: s.run(None, {"x": x}) for k, s in sessions.items()}}
        best = dict.fromkeys(kinds, float("inf"))
        with torch.inference_mode():
            for rep in range(repeats + 1):  # repeat 0 warms up
                for kind, fn in kinds.items():
                    t0 = time.perf_counter()
                    fn()
                    if rep:
                        best[kind] = min(best[kind], time.perf_counter() - t0)
        out = {k: flops / t / 1e9 for k, t in best.items()}
    out["int8/torch_fp32"] = out["ort_int8"] / out["torch_fp32"]
    return out


def measure(runners: dict, texts: list[str], chunk: int) -> dict[str, float]:
    for run in runners.values():  # warm-up: session init, allocator, thread pools
        run(texts[:16])
    spent = dict.fromkeys(runners, 0.0)
    for start in range(0, len(texts), chunk):
        part = texts[start:start + chunk]
        for key, run in runners.items():
            t0 = time.perf_counter()
            run(part)
            spent[key] += time.perf_counter() - t0
        done = min(start + chunk, len(texts))
        print(f"  {done}/{len(texts)} passages", file=sys.stderr, flush=True)
    return {k: len(texts) / s for k, s in spent.items()}


RATIOS = (("e/a throughput (target >= 3)", "e", "a"), ("e/b throughput (target >= 0.7)", "e", "b"),
          ("g/e throughput (target >= 0.95)", "g", "e"), ("d/f time (target <= 0.45)", "f", "d"),
          ("c/f time (reported)", "f", "c"))


def report(tps: dict[str, float], n: int, max_length: int, tokens: int) -> dict:
    ratios = {name: tps[num] / tps[den] for name, num, den in RATIOS if num in tps and den in tps}
    per_text = tokens / n
    print(f"\n{n} SciFact passages, max length {max_length} for every variant ({per_text:.0f} tokens a passage "
          f"after truncation), {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
    print("| variant | what | texts/s | tokens/s |\n|---|---|---:|---:|")
    for k, v in tps.items():
        print(f"| {k} | {LABELS[k]} | {v:.1f} | {v * per_text:.0f} |")
    print("\n| ratio | value |\n|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f} |")
    return {"passages": n, "max_length": max_length, "tokens": tokens, "texts_per_s": tps,
            "tokens_per_s": {k: v * per_text for k, v in tps.items()}, "ratios": ratios}


def main() -> int:
    from embedder.registry import default_model_dir
    from embedder.settings import MODELS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 passages (under 2 minutes)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--max-lengths", type=int, nargs="+", default=[512, 256],
                    help="one round per length; every variant truncates at it")
    ap.add_argument("--variants", nargs="+", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--profile", action="store_true", help="onnxruntime per-operator shares of (e) per length")
    ap.add_argument("--gemm", action="store_true",
                    help="first measure the int8/fp32 GEMM ceiling of this CPU (torch fp32 vs onnxruntime int8)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", type=Path, default=None, help="MoE model folder (default: the app's model)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n = 200 if args.quick else args.n
    model_dir = args.model or default_model_dir()
    dense_dir, task_dir = MODELS_DIR / "minilm-dense-base", MODELS_DIR / "minilm-task-upcycled"
    ensure_exports(model_dir, dense_dir, task_dir)
    texts = passages(n)
    variants = "".join(args.variants)
    result = {"model": str(model_dir), "cpu": cpu_name(), "rounds": []}
    if args.gemm:
        result["gemm_gops"] = gemm_ceiling()
        g = result["gemm_gops"]
        print(f"GEMM (4096 x 384) @ (384 x 1536), {os.cpu_count()} threads: torch fp32 {g['torch_fp32']:.0f}, "
              f"onnxruntime fp32 {g['ort_fp32']:.0f}, onnxruntime int8 {g['ort_int8']:.0f} GOP/s: "
              f"int8 / torch fp32 = {g['int8/torch_fp32']:.2f} (int8's gain on the GEMMs at equal FLOPs)")
    for max_length in args.max_lengths:
        runners = build_runners(model_dir, dense_dir, task_dir, max_length, args.batch_size, variants)
        tps = measure(runners, texts, chunk=100 if args.quick else 200)
        row = report(tps, len(texts), max_length, token_count(model_dir, texts, max_length))
        if args.profile:
            row["int8_profile_pct"] = profile_int8(model_dir, texts, max_length, args.batch_size)
            print("\n(e) onnxruntime kernel time by operator: " + ", ".join(
                f"{op} {pct}%" for op, pct in list(row["int8_profile_pct"].items())[:8]))
        result["rounds"].append(row)
        del runners
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
