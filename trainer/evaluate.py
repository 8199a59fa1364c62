"""``python -m trainer eval``: nDCG@10 and Recall@100 of a model on BEIR folders, with 95% bootstrap intervals.

Documents are embedded as ``title + " " + text`` for ``search_document`` (its prefix, and its expert in a task
model), queries for ``search_query``; exact inner-product search over the whole corpus; the measures come from
ir-measures (which runs pytrec_eval), so the numbers are the ones BEIR/MTEB report. Per-query scores are kept in
the result (``per_query``), so that `trainer.stats` can compute intervals and paired tests later.

Backends: ``onnx`` runs the exported int8 file on CPU through `embedder.runtime.Embedder`, the very file the app
serves (exported into a scratch folder when the model folder has no current export); ``torch`` runs the model in
fp32 (`trainer.encode.TextEncoder`); ``both`` runs the two and reports how far they agree.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from embedder.cpu_variant import CpuInfo

from .data import doc_text, load_beir, split_spec
from .measures import measure_run
from .stats import RESAMPLES, SEED

log = logging.getLogger(__name__)

TOP_K = 1000
BACKENDS = ("onnx", "torch", "both")
BACKEND_NAMES = {"onnx": "onnx-int8-cpu", "torch": "torch-fp32"}
ONNX_VARIANTS = ("int8", "gather", "fused")  # CPU files `--variant` can evaluate (embedder.settings.ONNX_FILES)
CROSS = "@"  # ``QUERIES@CORPUS``: one collection's queries over another's corpus and judgements (same ids)


def search(q: torch.Tensor, d: torch.Tensor, k: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (scores, indices) of q (Q, D) against d (N, D) by inner product."""
    k = min(k, d.shape[0])
    scores, idx = [], []
    for s in range(0, q.shape[0], chunk):
        sim = q[s: s + chunk] @ d.T  # (c, N)
        top = sim.topk(k, dim=1)
        scores.append(top.values)
        idx.append(top.indices)
    return torch.cat(scores), torch.cat(idx)  # (Q, k), (Q, k)


# ---------------------------------------------------------------- backends


class TorchBackend:
    name = BACKEND_NAMES["torch"]

    def __init__(self, model: str | Path):
        from .encode import TextEncoder

        self.encoder = TextEncoder.load(model)
        self.settings = self.encoder.settings
        self.folder = self.encoder.folder
        self.hidden_size = self.encoder.hidden_size

    def embed(self, texts: list[str], query: bool, *, max_length: int, batch_size: int, dim: int | None,
              desc: str, progress: bool) -> torch.Tensor:
        s = self.settings
        task = "search_query" if query else "search_document"
        kw = {"task": task} if self.encoder.tasks else {}
        return self.encoder.embed(texts, max_length=max_length, batch_size=batch_size,
                                  prefix=s.query_prefix if query else s.document_prefix, dim=dim, desc=desc,
                                  progress=progress, **kw)


def onnx_folder(model: str | Path, work: Path, variant: str = "int8") -> Path:
    """A model folder with a current ``variant`` export of ``model``: the folder itself when its export is current,
    else a copy in ``work`` exported there. ``base`` (or any plain dense BERT folder) becomes a dense moesearch
    folder first (no MoE layer, no prefixes): the same function of the text as the base."""
    from embedder.export import export, is_current
    from embedder.settings import SETTINGS_FILE

    src = Path(model) if str(model) != "base" else None
    if src is not None and (src / SETTINGS_FILE).is_file():
        if is_current(src, (variant,)):
            return src
        dst = work / src.name
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and f.name != "trainer_state.pt":
                (dst / f.name).symlink_to(f.resolve())
    else:
        from embedder.upcycle import upcycle

        dst = upcycle(work / "dense", src, num_experts=1, top_k=1, moe_layers=[], prefixes=False,
                      model_id="base" if src is None else src.name)
    export(dst, (variant,))
    return dst


class OnnxBackend:
    def __init__(self, model: str | Path, work: Path, max_length: int, variant: str = "int8"):
        from embedder.runtime import Embedder
        from embedder.settings import EmbeddingSettings

        if variant not in ONNX_VARIANTS:
            raise ValueError(f"variant must be one of {ONNX_VARIANTS}, got {variant!r}")
        self.name = BACKEND_NAMES["onnx"] if variant == "int8" else f"onnx-{variant}-fp32-cpu"
        folder = onnx_folder(model, work, variant)
        self.folder = Path(model)  # what was asked for ("base" stays "base"), not the scratch folder
        max_length = min(max_length, EmbeddingSettings.load(folder).max_length)
        self.embedder = Embedder(folder, device="cpu", variant=variant, max_length=max_length)
        self.settings = self.embedder.settings
        self.hidden_size = self.settings.matryoshka_dims[0]

    def embed(self, texts: list[str], query: bool, *, max_length: int, batch_size: int, dim: int | None,
              desc: str, progress: bool) -> torch.Tensor:
        task = "search_query" if query else "search_document"
        vecs = self.embedder.embed(texts, task=task, batch_size=batch_size, dim=dim, progress=progress)
        return torch.from_numpy(vecs)  # (N, D)


# ---------------------------------------------------------------- evaluation


def evaluate(backend, folder: str | Path, split: str = "test", *, max_length: int = 512, batch_size: int = 32,
             dim: int | None = None, progress: bool = True, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Measures of one backend on one BEIR split (queries without judgements are skipped, as in BEIR)."""
    t0 = time.time()
    corpus, queries, qrels, name = load_sets(folder, split)
    qids = [q for q in qrels if q in queries]
    if not qids:
        raise ValueError(f"{folder}: no judged queries in split {split!r}")
    dids = list(corpus)
    s = backend.settings
    kw = dict(max_length=max_length, batch_size=batch_size, dim=dim, progress=progress)
    d_emb = backend.embed([doc_text(corpus[i]) for i in dids], False, desc=f"{name} docs", **kw)  # (N, D)
    q_emb = backend.embed([queries[i] for i in qids], True, desc=f"{name} queries", **kw)  # (Q, D)
    scores, idx = search(q_emb, d_emb, TOP_K)
    run = {qid: {dids[j]: float(v) for v, j in zip(scores[n].tolist(), idx[n].tolist(), strict=True)}
           for n, qid in enumerate(qids)}
    judged = {q: qrels[q] for q in qids}
    result = {"dataset": name, "split": split, "model": str(backend.folder), "model_id": s.model_id,
              "backend": backend.name, "queries": len(qids), "docs": len(dids), "max_length": max_length,
              "dim": dim or backend.hidden_size, "query_prefix": s.query_prefix,
              "document_prefix": s.document_prefix, **measure_run(judged, run, resamples, seed),
              "top10": {qid: list(run[qid])[:10] for qid in qids}, "seconds": round(time.time() - t0, 1),
              "cpu": CpuInfo.read().describe()}
    log.info("%s", json.dumps(summary(result)))
    return result


def load_sets(folder: str | Path, split: str) -> tuple[dict, dict, dict, str]:
    """(corpus, queries, qrels, name) of a BEIR folder, or of ``QUERIES@CORPUS``: the queries of one folder over
    the corpus and judgements of another whose ids they share (XQuAD's languages: cross-lingual retrieval)."""
    text = str(folder)
    if CROSS in text and not Path(text).exists():
        q_folder, c_folder = (Path(p) for p in text.split(CROSS, 1))
        corpus, _, qrels = load_beir(c_folder, split)
        _, queries, q_qrels = load_beir(q_folder, split)
        if set(q_qrels) != set(qrels):
            raise ValueError(f"{text}: the two collections judge different query ids; they are not parallel")
        return corpus, queries, qrels, f"{q_folder.name}{CROSS}{c_folder.name}"
    corpus, queries, qrels = load_beir(folder, split)
    return corpus, queries, qrels, Path(folder).name


def summary(row: dict) -> dict:
    """A result without its per-query parts (what is printed), nested backend rows included."""
    return {k: summary(v) if isinstance(v, dict) and "per_query" in v else v for k, v in row.items()
            if k not in ("per_query", "top10")}


def agreement(a: dict, b: dict) -> dict:
    """How far two backends' results on one set agree: differences of the means and of per-query scores, and
    the mean overlap of their top-10 lists."""
    out: dict = {"backends": [a["backend"], b["backend"]]}
    for m in a["per_query"]:
        qa, qb = a["per_query"][m], b["per_query"][m]
        diffs = [abs(qa[q] - qb[q]) for q in qa]
        out[m] = {"diff": b[m] - a[m], "max_query_diff": max(diffs), "mean_query_diff": float(np.mean(diffs))}
    out["top10_overlap"] = float(np.mean([len(set(a["top10"][q]) & set(b["top10"][q])) / max(1, len(a["top10"][q]))
                                          for q in a["top10"]]))
    return out


def evaluate_many(model: str | Path, specs: list[str], backend: str = "onnx", variant: str = "int8", **kw
                  ) -> list[dict]:
    """One model on several ``path[:split]`` BEIR specs (default split test; ``QUERIES@CORPUS[:split]`` for
    cross-lingual sets). ``backend="both"``: the onnx rows, each with the torch figures under ``"torch-fp32"``
    and their ``"agreement"``. ``variant``: the ONNX file the onnx backend runs (int8, gather or fused)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    with tempfile.TemporaryDirectory(prefix="moesearch-eval-") as tmp:
        backends = []
        if backend in ("onnx", "both"):
            backends.append(OnnxBackend(model, Path(tmp), kw.get("max_length", 512), variant))
        if backend in ("torch", "both"):
            backends.append(TorchBackend(model))
        out = []
        for spec in specs:
            path, split = split_spec(spec, "test")
            rows = [evaluate(b, path, split, **kw) for b in backends]
            if len(rows) == 2:
                onnx_row, torch_row = rows
                onnx_row[torch_row["backend"]] = torch_row
                onnx_row["agreement"] = agreement(onnx_row, torch_row)
                log.info("%s:%s onnx vs torch: %s", onnx_row["dataset"], split, json.dumps(onnx_row["agreement"]))
            for row in rows:
                row.pop("top10")
            out.append(rows[0])
    return out
