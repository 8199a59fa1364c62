"""Which ONNX file a CPU host serves, int8 or fp32, measured on that CPU and kept in ``onnx/variant.json``.

Torch-free: the runtime reads it, ``python -m embedder prepare`` writes it.  On CPUs without VNNI/AMX,
onnxruntime's int8 GEMMs measured 1.0-1.6x its fp32 ones (Zen 1 to Zen 3) while the int8 file loses about half of
a fine-tuned gain (SciFact nDCG@10: fp32 0.6708, int8 0.6626), so int8 is worth serving only where it is clearly
faster.  ``prepare`` times both files on a fixed calibration batch (`measure`), `decide` applies the rule (int8
only when it embeds at least `MIN_INT8_SPEEDUP` times as many texts/s as fp32), and `write` records both timings,
the CPU and the files' sha256.  The runtime (`serving_choice`) serves what was recorded while the files and the CPU
are the ones measured; without a current record it serves int8 as before and logs a warning that names
``python -m embedder prepare``.  A setting forces a variant (``MOESEARCH_ONNX_VARIANT=int8|fp32``; ``auto``
follows the measurement).

The fp32 candidate on a CPU is the sparse gather/scatter graph (``model.gather-fp32.onnx``): on the multilingual
e5 MoE (a 2-core AVX-512 VNNI Xeon, batches of 8 and 32 texts x 200 tokens) it ran 1.5-1.9x as fast as the
``com.microsoft::MoE`` graph of ``model.onnx``, whose CPU kernel is the slowest of the three files; the fused file
stays the CUDA one.

The calibration batch is `TEXTS` fixed texts truncated to `TOKENS` tokens (a passage; the indexer's chunks are 256),
one batch per run, with the serving process's session options.  The timing is bounded: one warm-up run of each
file, then up to `REPEATS` interleaved rounds (one timed run of each file, the order alternating), which stop once
`BUDGET_S` seconds have passed since the warm-up began, after at least one round.  So it takes at most `BUDGET_S`
plus one round: 8-12 s for the multilingual e5 MoE on that 2-core host (a run there is 0.5-1 s int8, 1.2-2.7 s
fp32), a few seconds on a larger one, plus loading the two sessions (3-5 s each there).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .settings import ONNX_FILES, SEARCH_DOCUMENT, EmbeddingSettings, sha256

log = logging.getLogger(__name__)

MIN_INT8_SPEEDUP = 1.15  # int8 serves only when it embeds at least this many times fp32's texts/s
CPU_FP32 = "gather"  # the export variant that is the fp32 candidate on a CPU (see the module docstring)
INT8, FP32, AUTO = "int8", "fp32", "auto"
CHOICES = (INT8, FP32)
SETTINGS = (AUTO, *CHOICES)  # MOESEARCH_ONNX_VARIANT (declared in indexer/settings.py)
EXPORT_VARIANT = {INT8: "int8", FP32: CPU_FP32}  # choice -> ONNX_FILES key
VARIANT_JSON = "variant.json"
FORMAT = 1
# The calibration batch: deterministic texts truncated to a realistic passage length.
TEXTS, TOKENS, REPEATS, BUDGET_S = 8, 200, 5, 8.0
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what decides int8 against fp32
PREPARE = "python -m embedder prepare"
_WORDS = ("the study of patients with chronic disease showed that early treatment reduced the risk of severe "
          "outcomes while protein expression in human cells increased after exposure to the drug and the model "
          "predicted response rates across clinical trials data analysis revealed significant associations between "
          "gene activity growth factors and immune function in mice la maladie des patients die Behandlung der "
          "Zellen el tratamiento de los pacientes il rischio di malattia het effect van de behandeling").split()


def calibration_texts(n: int = TEXTS, words: int = 2 * TOKENS) -> list[str]:
    """``n`` fixed pseudo-passages of ``words`` words each (longer than `TOKENS` tokens in any tokenizer)."""
    rng = random.Random(0)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)) for _ in range(n)]


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model and the SIMD flags that decide int8 against fp32 (from the first block of /proc/cpuinfo)."""

    model: str
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("CpuInfo.model must be a non-empty string")
        unknown = set(self.flags) - set(SIMD_FLAGS)
        if unknown:
            raise ValueError(f"CpuInfo.flags must be among {SIMD_FLAGS}, got {sorted(unknown)}")
        object.__setattr__(self, "flags", tuple(f for f in SIMD_FLAGS if f in self.flags))

    @classmethod
    def read(cls, path: str | os.PathLike = "/proc/cpuinfo") -> CpuInfo:
        try:
            text = Path(path).read_text()
        except OSError:
            return cls(platform.processor() or platform.machine() or "unknown")
        fields: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        have = set(fields.get("flags", "").split())
        return cls(fields.get("model name") or platform.processor() or "unknown",
                   tuple(f for f in SIMD_FLAGS if f in have))

    def describe(self) -> str:
        return f"{self.model} ({' '.join(self.flags) or 'no AVX2'})"


@dataclass(frozen=True)
class Choice:
    """The file a CPU serves and why: the rule on both timings, a forced setting, or no current measurement."""

    variant: str  # int8 | fp32
    setting: str = AUTO  # auto | int8 | fp32 (MOESEARCH_ONNX_VARIANT)
    int8_texts_per_s: float | None = None
    fp32_texts_per_s: float | None = None
    unmeasured: str = ""  # why no measurement applies (setting auto: the int8 default then serves)

    def __post_init__(self) -> None:
        if self.variant not in CHOICES:
            raise ValueError(f"variant must be one of {CHOICES}, got {self.variant!r}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        for name in ("int8_texts_per_s", "fp32_texts_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        if (self.int8_texts_per_s is None) != (self.fp32_texts_per_s is None):
            raise ValueError("give both timings or neither")

    @property
    def file(self) -> str:
        return ONNX_FILES[EXPORT_VARIANT[self.variant]]

    @property
    def ratio(self) -> float | None:
        """int8 texts/s over fp32 texts/s on this CPU (None: not measured)."""
        if self.int8_texts_per_s is None or self.fp32_texts_per_s is None:
            return None
        return self.int8_texts_per_s / self.fp32_texts_per_s

    def describe(self) -> str:
        """E.g. ``fp32 (int8 1.08x fp32 on this CPU, below the 1.15x rule)``."""
        measured = f"int8 {self.ratio:.2f}x fp32 on this CPU" if self.ratio is not None else ""
        if self.setting != AUTO:
            why = f"forced by MOESEARCH_ONNX_VARIANT={self.setting}; " + (measured or "not measured")
        elif self.ratio is None:
            why = f"not measured: {self.unmeasured}; run `{PREPARE}`"
        else:
            side = "at or above" if self.ratio >= MIN_INT8_SPEEDUP else "below"
            why = f"{measured}, {side} the {MIN_INT8_SPEEDUP}x rule"
        return f"{self.variant} ({why})"

    def to_dict(self) -> dict:
        ratio = self.ratio
        return {**asdict(self), "file": self.file, "int8_over_fp32": None if ratio is None else round(ratio, 3),
                "min_int8_speedup": MIN_INT8_SPEEDUP, "summary": self.describe()}


def decide(int8_texts_per_s: float | None, fp32_texts_per_s: float | None, setting: str = AUTO) -> Choice:
    """The rule: fp32 unless int8 embeds at least `MIN_INT8_SPEEDUP` times fp32's texts/s; a forced setting wins
    (its timings, when known, are kept for display).  Pure: the timings come from the caller."""
    if setting not in SETTINGS:
        raise ValueError(f"MOESEARCH_ONNX_VARIANT must be one of {SETTINGS}, got {setting!r}")
    if setting != AUTO:
        return Choice(setting, setting, int8_texts_per_s, fp32_texts_per_s)
    if int8_texts_per_s is None or fp32_texts_per_s is None:
        raise ValueError("the auto rule needs both timings (int8 and fp32 texts/s)")
    ratio = int8_texts_per_s / fp32_texts_per_s
    return Choice(INT8 if ratio >= MIN_INT8_SPEEDUP else FP32, AUTO, int8_texts_per_s, fp32_texts_per_s)


@dataclass(frozen=True)
class Calibration:
    """What ``variant.json`` holds: both timings on this CPU, the decision, and the files measured."""

    int8_texts_per_s: float
    fp32_texts_per_s: float
    files: dict  # ONNX file name -> sha256 (the manifest's, else computed): a re-export invalidates the record
    cpu: CpuInfo
    runs_s: dict = field(default_factory=dict)  # int8 / fp32 -> seconds of each timed run of the batch
    texts: int = TEXTS
    tokens: int = TOKENS
    threads: int | None = None  # onnxruntime intra-op threads (None: its default, as the serving process)
    cores: int = 1
    onnxruntime: str = ""
    measured_at: str = ""
    fp32_variant: str = CPU_FP32

    def __post_init__(self) -> None:
        for name in ("int8_texts_per_s", "fp32_texts_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        expected = {ONNX_FILES[v] for v in EXPORT_VARIANT.values()}
        if set(self.files) != expected:
            raise ValueError(f"files must name exactly {sorted(expected)}, got {sorted(self.files)}")
        if isinstance(self.cpu, dict):
            object.__setattr__(self, "cpu", CpuInfo(self.cpu.get("model", ""), tuple(self.cpu.get("flags", ()))))

    @property
    def choice(self) -> Choice:
        return decide(self.int8_texts_per_s, self.fp32_texts_per_s)

    def to_json(self) -> dict:
        choice = self.choice
        return {"format": FORMAT, "choice": choice.variant, "file": choice.file, "summary": choice.describe(),
                "int8_over_fp32": round(choice.ratio, 3), "min_int8_speedup": MIN_INT8_SPEEDUP,
                "rule": f"serve int8 only when it embeds >= {MIN_INT8_SPEEDUP}x fp32's texts/s, else fp32",
                **{k: v for k, v in asdict(self).items() if k != "cpu"},
                "cpu": {"model": self.cpu.model, "flags": list(self.cpu.flags)}}

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this runtime reads {FORMAT}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def file_sha256(onnx_dir: Path, name: str) -> str | None:
    """The sha256 of ``onnx_dir/name``: the export manifest's when it lists the file at its present size (no need
    to read a 500 MB file at every start), else computed; None when the file is missing."""
    path = onnx_dir / name
    if not path.is_file():
        return None
    manifest = onnx_dir / "manifest.json"
    try:
        entry = json.loads(manifest.read_text()).get("files", {}).get(name) if manifest.is_file() else None
    except (OSError, ValueError):
        entry = None
    if entry and entry.get("bytes") == path.stat().st_size and entry.get("sha256"):
        return entry["sha256"]
    return sha256(path)


def fingerprints(onnx_dir: Path) -> dict[str, str | None]:
    return {ONNX_FILES[v]: file_sha256(onnx_dir, ONNX_FILES[v]) for v in EXPORT_VARIANT.values()}


def time_runs(runs: dict[str, Callable[[], object]], repeats: int = REPEATS, budget_s: float = BUDGET_S,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """One warm-up call of each, then up to ``repeats`` interleaved timed calls of each (the order alternates per
    round); rounds stop once ``budget_s`` has passed since the warm-up began, after at least one."""
    start = clock()
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats):
        for name in (list(runs) if round_ % 2 == 0 else list(reversed(runs))):
            t0 = clock()
            runs[name]()
            times[name].append(clock() - t0)
        if clock() - start >= budget_s:
            break
    return times


def measure(model_dir: str | os.PathLike, threads: int | None = None) -> Calibration:
    """Time the int8 and the fp32 CPU file of an exported model folder on the calibration batch, with the serving
    process's session options (``threads``: None = onnxruntime's default; no thread spinning)."""
    import onnxruntime as ort

    from .runtime import Embedder

    model_dir = Path(model_dir)
    onnx_dir = model_dir / "onnx"
    files = fingerprints(onnx_dir)
    missing = [name for name, sha in files.items() if sha is None]
    if missing:
        raise FileNotFoundError(f"{onnx_dir}: no {' or '.join(missing)} to measure; run `{PREPARE} {model_dir}`")
    texts, tokens = calibration_texts(), min(TOKENS, EmbeddingSettings.load(model_dir).max_length)
    runs = {}
    for choice in CHOICES:
        emb = Embedder(model_dir, device="cpu", variant=EXPORT_VARIANT[choice], threads=threads, max_length=tokens)
        task = SEARCH_DOCUMENT if SEARCH_DOCUMENT in emb.allowed_tasks else emb.allowed_tasks[0]
        runs[choice] = lambda e=emb, t=task: e.embed(texts, task=t, batch_size=len(texts))
    times = time_runs(runs)
    # the fastest of the interleaved runs: other load on the machine only ever slows a run down, so the minimum is
    # the least disturbed figure (under load 5-8 a median gave int8 1.06x fp32 where an idle run gives ~2x)
    speed = {choice: len(texts) / min(times[choice]) for choice in CHOICES}
    return Calibration(round(speed[INT8], 3), round(speed[FP32], 3), files, CpuInfo.read(),
                       {c: [round(t, 4) for t in times[c]] for c in CHOICES}, len(texts), tokens, threads,
                       _cores(), ort.__version__, datetime.now(UTC).isoformat(timespec="seconds"))


def write(onnx_dir: str | os.PathLike, calibration: Calibration) -> Path:
    path = Path(onnx_dir) / VARIANT_JSON
    tmp = path.with_name(f".{VARIANT_JSON}.tmp")
    tmp.write_text(json.dumps(calibration.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def current(onnx_dir: str | os.PathLike, cpu: CpuInfo | None = None) -> tuple[Calibration | None, str]:
    """The recorded calibration when it still applies (same files, same CPU), else None and why not (file names,
    no paths: the reason is shown on the Status page)."""
    onnx_dir = Path(onnx_dir)
    path = onnx_dir / VARIANT_JSON
    if not path.is_file():
        return None, f"no {VARIANT_JSON}"
    try:
        cal = Calibration.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return None, f"{VARIANT_JSON} is unreadable ({exc})"
    if cal.fp32_variant != CPU_FP32:
        return None, f"{VARIANT_JSON} timed fp32 as {cal.fp32_variant!r}, the CPU's fp32 file is now {CPU_FP32!r}"
    for name, sha in fingerprints(onnx_dir).items():
        if sha is None:
            return None, f"{name}, which {VARIANT_JSON} timed, is missing"
        if sha != cal.files[name]:
            return None, f"{name} changed since {VARIANT_JSON} timed it (re-exported)"
    cpu = cpu or CpuInfo.read()
    if cpu != cal.cpu:
        return None, f"{VARIANT_JSON} was measured on {cal.cpu.describe()}, this CPU is {cpu.describe()}"
    return cal, ""


def serving_choice(onnx_dir: str | os.PathLike, setting: str = AUTO, cpu: CpuInfo | None = None) -> Choice:
    """What a CPU session serves: the setting when forced, else the current record's decision, else int8 (the
    default before any measurement) with a message naming ``python -m embedder prepare`` (a warning when a record
    exists but no longer applies)."""
    if setting not in SETTINGS:
        raise ValueError(f"MOESEARCH_ONNX_VARIANT must be one of {SETTINGS}, got {setting!r}")
    cal, why = current(onnx_dir, cpu)
    if cal is not None:
        return decide(cal.int8_texts_per_s, cal.fp32_texts_per_s, setting)
    if setting != AUTO:
        return decide(None, None, setting)
    # never measured (a folder exported without `prepare`): int8 as before, said at INFO so every CLI run of such a
    # folder does not print it; a record that no longer applies (other CPU, re-exported files) is a warning
    level = logging.INFO if why == f"no {VARIANT_JSON}" else logging.WARNING
    log.log(level, "%s: int8 against fp32 not measured on this CPU (%s); serving int8. Run `%s` to time both here "
            "and serve the faster", Path(onnx_dir), why, PREPARE)
    return Choice(INT8, AUTO, unmeasured=why)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
