"""The whole recipe (Nomic Embed v2 on CPU): data -> upcycle -> filter -> pretrain -> mine -> finetune -> export
-> eval, every step's output kept under ``out_dir`` so a step can be rerun alone. Under torchrun only the
training stages run on every rank; data, filtering, mining, export and evaluation run on rank 0.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from embedder.modes import get_mode

from . import distributed
from .build import build_data
from .config import RecipeConfig, to_dict
from .data import read_training, split_spec, write_jsonl
from .encode import TextEncoder
from .licences import USER_LICENCE
from .loop import train_stage

log = logging.getLogger(__name__)


def _by_source(records) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in records:
        out.setdefault(r.source, []).append(r)
    return out


def write_by_source(records, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source, recs in sorted(_by_source(records).items()):
        p = folder / (source.replace("/", "-") + ".jsonl")
        write_jsonl(p, recs)
        paths.append(str(p))
    return sorted(paths)  # the same order `_reuse` finds them in on --resume


def run_filter(cfg: RecipeConfig, inputs: list[str], out: Path, progress: bool = True) -> tuple[list[str], dict]:
    from .filtering import consistency_filter

    records = read_training(inputs)
    teacher = TextEncoder.load(cfg.filter.teacher)
    teacher.use_bf16(cfg.filter.bf16, "filter")
    kept, report = consistency_filter(records, teacher, cfg.filter, cfg.seed, progress)
    paths = write_by_source(kept, out)
    (out / "filter_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return paths, report


def run_mine(cfg: RecipeConfig, inputs: list[str], retriever: str, out: Path, progress: bool = True
             ) -> tuple[list[str], dict]:
    from .mining import mine

    records = read_training(inputs)
    enc = TextEncoder.load(retriever)
    enc.use_bf16(cfg.mine.bf16, "mine")
    mined, report = mine(records, enc, cfg.mine, cfg.mine.corpora, progress)
    paths = write_by_source(mined, out)
    (out / "mine_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return paths, report


def publish_fp16(model_dir: Path, dst: Path) -> Path:
    """Write a copy of a model folder with its weights in fp16 (the shipped form: < 100 MB a file) into ``dst``, a
    working folder of this run (replaced if there); ``publish_model`` then publishes it as a new version, so a
    published folder is never rewritten or deleted."""
    import shutil

    from embedder.folder import CARD, write_model_folder
    from embedder.model import MoeBertModel
    from embedder.settings import SETTINGS_FILE, TOKENIZER_FILES, EmbeddingSettings

    model = MoeBertModel.from_pretrained(model_dir, dtype=torch.float32).half()
    shutil.rmtree(dst, ignore_errors=True)
    write_model_folder(dst, model, EmbeddingSettings.load(model_dir), model_dir, model_dir / CARD)
    written = ("config.json", "model.safetensors", SETTINGS_FILE, CARD, *TOKENIZER_FILES)
    for f in model_dir.iterdir():  # the rest as it is (eval results, ...); never the trainer's state
        if f.is_file() and f.name not in (*written, "trainer_state.pt"):
            shutil.copyfile(f, dst / f.name)
    return dst


def registry_root(name: str) -> Path:
    """Where ``--publish NAME`` publishes: a path as given (``models/NAME``), a bare name under ``models/``."""
    from embedder.settings import MODELS_DIR

    path = Path(name).expanduser()
    return path if path.is_absolute() or len(path.parts) > 1 else MODELS_DIR / name


def publish_model(model_dir: Path, name: str) -> tuple:
    """Publish a finished model folder (weights, exported ONNX, card) as a new immutable version of ``name`` and
    move its ``current`` pointer; returns the ModelRef and the one command that switches the index to it."""
    from embedder.registry import publish

    root = registry_root(name)
    ref = publish(model_dir, root, ignore=("trainer_state.pt",))  # onnx/ came from these weights: keep it
    return ref, f"python -m indexer reindex --model {root}@{ref.version}"


def command() -> str:
    import sys

    argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith(("__main__.py", "trainer")) else ["recipe", "..."]
    return "python -m trainer " + " ".join(argv)


def _stage(cfg_stage, init, run_dir: Path, resume: bool, progress: bool) -> Path:
    """Train one stage; with ``resume``, skip a finished stage and continue an interrupted one."""
    from .checkpoint import latest_checkpoint, load_state

    ckpt = latest_checkpoint(run_dir) if resume else None
    if ckpt is not None and load_state(ckpt)["step"] >= cfg_stage.steps and (run_dir / "model").is_dir():
        log.info("resume: %s already finished (%s)", run_dir, ckpt.name)
        return run_dir / "model"
    return train_stage(cfg_stage, init, run_dir, resume=ckpt is not None, progress=progress)


def dense_base(base: str) -> Path | None:
    """The dense folder the recipe upcycles: None for "default" (all-MiniLM-L6-v2), a built-in base by name ("e5":
    multilingual-e5-small, converted from its wheel when missing; "minilm"), else the folder given."""
    from embedder.settings import BUILT_MODELS
    from embedder.upcycle import dense_dir_for

    if base == "default":
        return None
    return dense_dir_for(base) if base in set(BUILT_MODELS.values()) else Path(base)


def eval_folders(spec: str) -> list[Path]:
    """The BEIR folders an eval spec reads: ``path[:split]``, or both of a cross-lingual ``QUERIES@CORPUS[:split]``."""
    from .evaluate import CROSS

    path = split_spec(spec, "test")[0]
    if CROSS in str(path) and not path.exists():
        return [Path(p) for p in str(path).split(CROSS, 1)]
    return [path]


def _reuse(folder: Path, report: str, resume: bool) -> tuple[list[str], dict] | None:
    """On resume, the files and report a finished filter/mine step left."""
    if resume and (folder / report).is_file():
        log.info("resume: reusing %s", folder)
        return sorted(str(p) for p in folder.glob("*.jsonl")), json.loads((folder / report).read_text())
    return None


def _data_step(enabled: bool, inputs: list[str], folder: Path, report: str, resume: bool, run
               ) -> tuple[list[str], dict]:
    """A filter/mine step: its output files and report (reused on resume), or the inputs unchanged when disabled."""
    if not enabled:
        return inputs, {}
    return _reuse(folder, report, resume) or run()


def run_recipe(cfg: RecipeConfig, progress: bool = True, resume: bool = False) -> dict:
    d = distributed.setup()
    out = Path(cfg.out_dir)
    data_dir = Path(cfg.data_dir)
    t0 = time.time()
    timings = {}
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        if resume and (data_dir / "manifest.json").is_file():
            manifest = json.loads((data_dir / "manifest.json").read_text())
        else:
            manifest = build_data(cfg.data, data_dir, cfg.seed)  # cached sources: parsing only (~1 min)
        timings["data"] = time.time() - t0
        from embedder.upcycle import upcycle

        if not (resume and (out / "upcycled" / "model.safetensors").is_file()):
            upcycle(out / "upcycled", dense_base(cfg.base), num_experts=cfg.num_experts,
                    top_k=cfg.top_k, seed=cfg.seed, model_id=cfg.model_id, prefixes=cfg.prefixes,
                    moe_mode=cfg.experts, tasks=cfg.tasks if get_mode(cfg.experts).takes_tasks else None)
        inputs = list(cfg.pretrain.train) or [str(data_dir / info["file"]) for s, info in
                                               sorted(manifest["sources"].items()) if "file" in info
                                               and (info.get("source", s.split("-")[0]) in cfg.data.sources
                                                    or s.startswith("user-"))]
        write_licences(cfg, manifest, inputs, data_dir, out)
        missing = [b for b in cfg.eval.beir if not all(f.is_dir() for f in eval_folders(b))]
        if missing:  # fail before training, not after it
            raise FileNotFoundError(f"eval sets missing: {missing} (held-out sets: `python -m trainer heldout-build "
                                    "techfaq | squad_shifts-nyt`)")
        t = time.time()
        pre_files, filter_report = _data_step(cfg.filter.enabled, inputs, out / "filtered", "filter_report.json",
                                              resume, lambda: run_filter(cfg, inputs, out / "filtered", progress))
        timings["filter"] = time.time() - t
    pre_files = distributed.broadcast_object(pre_files if d.main else None, d)
    t = time.time()
    pre = replace(cfg.pretrain, train=tuple(pre_files))
    pre_model = _stage(pre, cfg.pretrain.init or out / "upcycled", out / "pretrain", resume, progress)
    timings["pretrain"] = time.time() - t
    if d.main:
        t = time.time()
        ft_inputs = list(cfg.finetune.train) or pre_files
        retriever = {"pretrained": str(pre_model), "base": "base"}.get(cfg.mine.retriever, cfg.mine.retriever)
        ft_files, mine_report = _data_step(cfg.mine.enabled, ft_inputs, out / "mined", "mine_report.json", resume,
                                           lambda: run_mine(cfg, ft_inputs, retriever, out / "mined", progress))
        timings["mine"] = time.time() - t
    ft_files = distributed.broadcast_object(ft_files if d.main else None, d)
    t = time.time()
    ft = replace(cfg.finetune, train=tuple(ft_files))
    final = _stage(ft, cfg.finetune.init or pre_model, out / "finetune", resume, progress)
    timings["finetune"] = time.time() - t
    result = {}
    if d.main:
        result = finish(cfg, out, final, manifest, filter_report, mine_report, timings, progress)
    distributed.barrier(d)
    return result


def finish(cfg, out: Path, final: Path, manifest, filter_report, mine_report, timings, progress) -> dict:
    from embedder.export import export, is_current

    from .card import write_card
    from .evaluate import evaluate_many, summary
    from .telemetry import read_metrics

    model_dir = publish_fp16(final, out / "publish") if cfg.publish else final
    t = time.time()
    if not is_current(model_dir):
        export(model_dir)
    timings["export"] = time.time() - t
    t = time.time()
    evals: dict = {}
    if cfg.eval.beir:
        kw = dict(max_length=cfg.eval.max_length, batch_size=cfg.eval.batch_size, progress=progress)
        for who, spec in (("base", cfg.eval.baseline), ("model", str(model_dir))):
            if not spec:  # no baseline: the run that is compared elsewhere (the dense A/B)
                continue
            backend = "onnx" if who == "base" and cfg.eval.backend == "both" else cfg.eval.backend
            for row in evaluate_many(spec, list(cfg.eval.beir), backend=backend, **kw):
                evals.setdefault(f"{row['dataset']}:{row['split']}", {})[who] = row
        (out / "eval.json").write_text(json.dumps(evals, indent=2) + "\n")
    timings["eval"] = time.time() - t
    curves = {s: read_metrics(out / s / "metrics.jsonl") or [{}] for s in ("pretrain", "finetune")}
    last = {s: rows[-1].get("contrastive") for s, rows in curves.items()}
    first = {s: rows[0].get("contrastive") for s, rows in curves.items()}
    metrics = {"first_contrastive": first, "last_contrastive": last}
    short = {k: {who: summary(row) for who, row in v.items()} for k, v in evals.items()}
    result = {"model": str(model_dir), "evals": short, "timings_s": {k: round(v, 1) for k, v in timings.items()},
              **metrics, "filter": filter_report, "mine": mine_report, "command": command()}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    write_card(out, (), model_dir / "README.md")  # everything in it is read back from the run folder
    if cfg.publish:  # last: the version appears complete (weights, ONNX, card) or not at all
        ref, switch = publish_model(model_dir, cfg.publish)
        result.update(model=str(ref.folder), published=ref.label, switch=switch)
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"published {ref.label} (now current). Switch the index to it (searches keep working meanwhile):\n"
              f"  {switch}\nor press 'Re-index with the new model' on the app's Status page.", file=sys.stderr)
    return result


def write_licences(cfg: RecipeConfig, manifest: dict, inputs: list[str], data_dir: Path, out: Path) -> dict:
    """Refuse non-commercial training files unless ``cfg.research``; write the manifest and every used source's
    licence (and the resulting model licence) into the run folder."""
    from .licences import model_licence, used_licences

    by_file = {str(data_dir / info["file"]): stem for stem, info in manifest.get("sources", {}).items()
               if "file" in info}
    stems = [by_file[f] for f in inputs if f in by_file]
    used = used_licences(manifest, stems)
    for f in inputs:
        if f not in by_file:  # files named on the command line: their licence is the user's
            used[Path(f).name] = {"source": Path(f).name, "licence": USER_LICENCE, "commercial": False, "origin": f}
    bad = {s: u["licence"] for s, u in used.items() if not u["commercial"] and u["licence"] != USER_LICENCE}
    if bad and not cfg.research:
        raise ValueError("training data not licensed for commercial use: " + "; ".join(
            f"{s}: {lic}" for s, lic in sorted(bad.items())) + ". Pass --research=true (the model is then "
            "research-only) or rebuild the data without them")
    info = {"sources": used, "model_licence": model_licence(used), "research": cfg.research}
    (out / "licences.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return info
