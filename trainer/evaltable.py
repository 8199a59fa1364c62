"""``python -m trainer table FILE...``: one Markdown table of evaluated models (``trainer eval --json`` files).

Columns are (model, ONNX variant) pairs, rows the evaluation sets in a fixed order (English held-out sets, XQuAD
mono-lingual per language, XQuAD cross-lingual), each cell nDCG@10 with its 95% bootstrap interval over queries.
Two summary rows: the mean over the English held-out sets each column has (what the default-model rule of README
"Models" compares) and the mean over XQuAD. The README and the built models' cards carry this table; the eval
files with per-query scores are committed under ``evals/``.
"""

from __future__ import annotations

from pathlib import Path

from .compare import load_evals

MEASURE = "nDCG@10"
ENGLISH = ("scifact", "cranfield", "squad_shifts-nyt", "techfaq")
XQUAD_LANGS = ("en", "de", "es", "zh", "ar", "hi", "ru")
CROSS = ("de", "zh", "ar")  # questions in these languages over the English paragraphs
VARIANT_NAMES = {"onnx-int8-cpu": "int8", "onnx-gather-fp32-cpu": "fp32", "onnx-fused-fp32-cpu": "fp32 fused",
                 "torch-fp32": "torch fp32"}


def set_order() -> list[str]:
    return [*ENGLISH, *(f"xquad-{x}" for x in XQUAD_LANGS), *(f"xquad-{x}@xquad-en" for x in CROSS)]


def columns(paths: list[str | Path]) -> dict[tuple[str, str], dict[str, dict]]:
    """{(model id, variant): {dataset: row}} merged over the files (one model may span several files)."""
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for path in paths:
        for row in load_evals(path).values():
            key = (row["model_id"], VARIANT_NAMES.get(row["backend"], row["backend"]))
            out.setdefault(key, {})[row["dataset"]] = row
    return out


def mean(col: dict[str, dict], names) -> float | None:
    vals = [col[n][MEASURE] for n in names if n in col]
    return sum(vals) / len(vals) if vals else None


def cell(row: dict | None) -> str:
    if row is None:
        return "–"
    lo, hi = row["ci95"][MEASURE]
    return f"{row[MEASURE]:.3f} [{lo:.3f}, {hi:.3f}]"


def label(name: str) -> str:
    if "@" in name:
        q, c = name.split("@")
        return f"XQuAD {q.removeprefix('xquad-')} → {c.removeprefix('xquad-')}"
    return f"XQuAD {name.removeprefix('xquad-')}" if name.startswith("xquad-") else name


def table(cols: dict[tuple[str, str], dict[str, dict]]) -> str:
    keys = list(cols)
    present = [n for n in set_order() if any(n in cols[k] for k in keys)]
    extra = sorted({n for k in keys for n in cols[k]} - set(present))
    lines = ["| set | " + " | ".join(f"{m} {v}" for m, v in keys) + " |", "|---|" + "---|" * len(keys)]
    for name in [*present, *extra]:
        lines.append(f"| {label(name)} | " + " | ".join(cell(cols[k].get(name)) for k in keys) + " |")
    for title, names in (("mean, English held-out", ENGLISH), ("mean, XQuAD (all rows above)",
                                                                [n for n in present if n.startswith("xquad-")])):
        vals = [mean(cols[k], names) for k in keys]
        lines.append(f"| **{title}** | " + " | ".join("–" if v is None else f"**{v:.3f}**" for v in vals) + " |")
    return "\n".join(lines)


def main(paths: list[str], out: str | None = None) -> str:
    text = table(columns(paths))
    if out:
        Path(out).write_text(text + "\n")
    return text


def english_gap(cols: dict[tuple[str, str], dict[str, dict]], candidate: tuple[str, str],
                reference: tuple[str, str]) -> dict:
    """The default rule's figure: mean English held-out nDCG@10 of ``candidate`` minus ``reference`` over the
    sets both have."""
    both = [n for n in ENGLISH if n in cols[candidate] and n in cols[reference]]
    a, b = mean(cols[candidate], both), mean(cols[reference], both)
    return {"sets": both, "candidate": a, "reference": b, "gap": None if a is None else a - b}

