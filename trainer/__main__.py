"""CLI: ``python -m trainer data | filter | pretrain | mine | finetune | eval | compare | card | heldout-build |
recipe | plot``.

Settings come from a recipe TOML (``--config``, default: built-in defaults) plus ``--key=value`` overrides;
inside a stage command a bare key means that stage's key (``pretrain --steps=5`` == ``--pretrain.steps=5``).
Unknown keys are errors. DDP: ``torchrun --nproc_per_node=N -m trainer pretrain ...`` (gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from .config import load_config, parse_overrides, to_dict

log = logging.getLogger("trainer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--config", help="recipe TOML (trainer/configs/*.toml)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    sub.add_parser("data", parents=[common], allow_abbrev=False, help="build training pairs from the offline sources")
    f = sub.add_parser("filter", parents=[common], allow_abbrev=False, help="consistency-filter pairs with a teacher")
    f.add_argument("--in", dest="inputs", nargs="+", required=True, help="JSONL files/folders or BEIR folders")
    f.add_argument("--out", required=True, help="folder for the kept pairs (one file per source)")
    for name in ("pretrain", "finetune"):
        s = sub.add_parser(name, parents=[common], allow_abbrev=False,
                           help=f"stage {1 if name == 'pretrain' else 2} training")
        s.add_argument("--init", help="model folder to start from (a moesearch folder)")
        s.add_argument("--out", help="run folder (checkpoints, metrics, plots, model/)")
        s.add_argument("--train", nargs="+", help="JSONL files/folders or BEIR folders (path[:split])")
        s.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    m = sub.add_parser("mine", parents=[common], allow_abbrev=False, help="mine hard negatives into the records' negs")
    m.add_argument("--in", dest="inputs", nargs="+", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--retriever", help="model folder or 'base' (default: mine.retriever)")
    e = sub.add_parser("eval", parents=[common], allow_abbrev=False,
                       help="nDCG@10 and Recall@100 on BEIR folders (prints JSON)")
    e.add_argument("--model", required=True, help="model folder, or 'base' for the dense all-MiniLM-L6-v2")
    e.add_argument("--beir", nargs="+", required=True, help="BEIR folder(s), path or path:split; QUERIES@CORPUS "
                   "runs one collection's queries over another's corpus (parallel sets such as xquad-de@xquad-en)")
    e.add_argument("--split", default="test")
    e.add_argument("--max-length", type=int, default=512)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--dim", type=int, help="Matryoshka truncation (default: full size)")
    e.add_argument("--json", help="also write the results (with per-query scores) to this file")
    e.add_argument("--backend", default="onnx", choices=("onnx", "torch", "both"),
                   help="onnx: the int8 file the app serves (CPU); torch: fp32; both: both and their agreement")
    e.add_argument("--variant", default="int8", choices=("int8", "gather", "fused"),
                   help="the ONNX file the onnx backend runs: int8 (served on CPU), gather or fused (fp32)")
    e.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    e.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    c = sub.add_parser("compare", allow_abbrev=False, help="paired tests of two evaluated runs, per set and average")
    c.add_argument("run_a", help="run folder (eval.json), RUN:base, or an eval --json file")
    c.add_argument("run_b")
    c.add_argument("--resamples", type=int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", help="also write the results to this file")
    t = sub.add_parser("table", allow_abbrev=False, help="Markdown table of eval --json files (README, model cards)")
    t.add_argument("files", nargs="+", help="eval --json files (one column per model and ONNX variant)")
    t.add_argument("--out", help="also write the table to this file")
    cd = sub.add_parser("card", allow_abbrev=False, help="write a model card from a run folder (and A/B runs)")
    cd.add_argument("run", help="recipe run folder")
    cd.add_argument("--ab", nargs="+", default=[], help="other run folders for the A/B table (same eval sets)")
    cd.add_argument("--out", help="card path (default: the run's model folder README.md)")
    hb = sub.add_parser("heldout-build", allow_abbrev=False, help="build a held-out BEIR collection into data/")
    hb.add_argument("name", help="techfaq | squad_shifts-nyt")
    hb.add_argument("--data-dir", default="data/trainer", help="its folder becomes DATA_DIR/eval/NAME")
    hb.add_argument("--out", help="output folder (default DATA_DIR/eval/NAME)")
    r = sub.add_parser("recipe", parents=[common], allow_abbrev=False,
                       help="data -> upcycle -> filter -> pretrain -> mine -> finetune -> export -> eval")
    r.add_argument("--resume", action="store_true", help="skip finished steps, continue an interrupted stage")
    pl = sub.add_parser("plot", allow_abbrev=False, help="(re)draw a run folder's PNG plots from metrics.jsonl")
    pl.add_argument("run")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, extra = _parser().parse_known_args(argv)
    try:
        overrides = parse_overrides(extra)
        if overrides and args.cmd in NO_OVERRIDES:
            raise ValueError(f"{args.cmd} takes no --key=value overrides, got {sorted(overrides)}")
        return COMMANDS[args.cmd](args, overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


def cmd_plot(args, _overrides: dict[str, str]) -> int:
    from .telemetry import plot_run

    for p in plot_run(Path(args.run) / "metrics.jsonl"):
        print(p)
    return 0


def cmd_eval(args, _overrides: dict[str, str]) -> int:
    from .evaluate import evaluate_many, summary

    specs = [b if ":" in b and not Path(b).exists() else f"{b}:{args.split}" for b in args.beir]
    rows = evaluate_many(args.model, specs, backend=args.backend, variant=args.variant, max_length=args.max_length,
                         batch_size=args.batch_size, dim=args.dim, progress=_progress(args),
                         resamples=args.resamples, seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    short = [summary(r) for r in rows]
    print(json.dumps(short if len(short) > 1 else short[0], indent=2))
    return 0


def cmd_compare(args, _overrides: dict[str, str]) -> int:
    from .compare import compare, load_evals, table

    res = compare(load_evals(args.run_a), load_evals(args.run_b), resamples=args.resamples, seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    for m in ("nDCG@10", "R@100"):
        print(f"{m}: B = {args.run_b} vs A = {args.run_a}\n{table(res, m)}\n")
    return 0


def cmd_table(args, _overrides: dict[str, str]) -> int:
    from .evaltable import main as table_main

    print(table_main(args.files, args.out))
    return 0


def cmd_card(args, _overrides: dict[str, str]) -> int:
    from .card import write_card

    print(write_card(Path(args.run), [Path(r) for r in args.ab], Path(args.out) if args.out else None))
    return 0


def cmd_heldout_build(args, _overrides: dict[str, str]) -> int:
    from .build import build_heldout

    info = build_heldout(args.name, Path(args.data_dir), Path(args.out) if args.out else None)
    print(json.dumps(info, indent=2))
    return 0


def cmd_data(args, overrides: dict[str, str]) -> int:
    from .build import build_data

    cfg = load_config(args.config, overrides, section="data")
    manifest = build_data(cfg.data, cfg.data_dir, cfg.seed)
    print(json.dumps({k: {x: v.get(x) for x in ("written", "parsed", "error") if x in v}
                      for k, v in manifest["sources"].items()}, indent=2))
    return 0 if any("file" in v for v in manifest["sources"].values()) else 1


def cmd_filter(args, overrides: dict[str, str]) -> int:
    from .recipe import run_filter

    cfg = load_config(args.config, overrides, section="filter")
    _, report = run_filter(cfg, args.inputs, Path(args.out), _progress(args))
    print(json.dumps(report, indent=2))
    return 0


def cmd_mine(args, overrides: dict[str, str]) -> int:
    from .recipe import run_mine

    cfg = load_config(args.config, overrides, section="mine")
    retriever = args.retriever or {"pretrained": "", "base": "base"}.get(cfg.mine.retriever, cfg.mine.retriever)
    if not retriever:
        raise ValueError("mine needs --retriever DIR|base (mine.retriever='pretrained' only means "
                         "something inside the recipe)")
    _, report = run_mine(cfg, args.inputs, retriever, Path(args.out), _progress(args))
    print(json.dumps(report, indent=2))
    return 0


def cmd_stage(args, overrides: dict[str, str]) -> int:
    """``pretrain`` and ``finetune``: one training stage."""
    from . import distributed
    from .loop import train_stage

    stage = getattr(load_config(args.config, overrides, section=args.cmd), args.cmd)
    stage = replace(stage, train=tuple(args.train) if args.train else stage.train,
                    init=args.init or stage.init, out=args.out or stage.out)
    if not stage.train or not stage.init or not stage.out:
        raise ValueError(f"{args.cmd} needs --train, --init and --out (or {args.cmd}.train/init/out in the config)")
    final = train_stage(stage, stage.init, stage.out, resume=args.resume, progress=_progress(args))
    d = distributed.setup()
    if d.main:
        print(json.dumps({"model": str(final), "config": to_dict(stage)}, indent=2))
    distributed.cleanup(d)
    return 0


def cmd_recipe(args, overrides: dict[str, str]) -> int:
    from . import distributed
    from .recipe import run_recipe

    result = run_recipe(load_config(args.config, overrides), _progress(args), resume=args.resume)
    d = distributed.setup()
    if d.main:
        print(json.dumps({k: result[k] for k in ("model", "evals", "timings_s") if k in result}, indent=2))
    distributed.cleanup(d)
    return 0


COMMANDS = {"plot": cmd_plot, "eval": cmd_eval, "compare": cmd_compare, "table": cmd_table, "card": cmd_card,
            "heldout-build": cmd_heldout_build, "data": cmd_data, "filter": cmd_filter, "mine": cmd_mine,
            "pretrain": cmd_stage, "finetune": cmd_stage, "recipe": cmd_recipe}
NO_OVERRIDES = ("plot", "eval", "compare", "table", "card", "heldout-build")  # they read no recipe settings


if __name__ == "__main__":
    sys.exit(main())
