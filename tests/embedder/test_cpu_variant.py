"""The CPU's ONNX variant: the int8-vs-fp32 rule, variant.json written by `prepare` and read by the runtime, a
stale record ignored with a warning, the forcing setting, and explicit variants left alone.  Timings in the rule's
tests are inputs; nothing here asserts on wall-clock time."""

import json
import logging
import shutil

import pytest

from embedder import cpu_variant as cv
from embedder.__main__ import main
from embedder.runtime import Embedder
from embedder.settings import ONNX_FILES

INT8_FILE, FP32_FILE = ONNX_FILES["int8"], ONNX_FILES[cv.CPU_FP32]


@pytest.fixture
def model(tiny_model_dir, tmp_path):
    """A private copy of the tiny model (its onnx/ included): the shared fixture never gets a variant.json."""
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    assert not (folder / "onnx" / cv.VARIANT_JSON).exists()
    return folder


def record(folder, int8, fp32, cpu=None, **changes):
    """A variant.json for ``folder``'s files with the given timings (texts/s), as `prepare` writes it."""
    onnx = folder / "onnx"
    cal = cv.Calibration(int8, fp32, cv.fingerprints(onnx), cpu or cv.CpuInfo.read(), **changes)
    return cv.write(onnx, cal)


# --- the rule (a pure function of the timings) ----------------------------------------------------------------------
def test_int8_serves_only_when_at_least_the_rule_faster():
    assert cv.MIN_INT8_SPEEDUP == 1.15
    assert cv.decide(120.0, 100.0).variant == "int8"  # 1.2x
    assert cv.decide(110.0, 100.0).variant == "fp32"  # 1.1x: not worth the lost accuracy
    assert cv.decide(115.0, 100.0).variant == "int8"  # exactly the rule
    assert cv.decide(80.0, 100.0).variant == "fp32"
    assert cv.decide(110.0, 100.0).describe() == "fp32 (int8 1.10x fp32 on this CPU, below the 1.15x rule)"
    assert cv.decide(120.0, 100.0).describe() == "int8 (int8 1.20x fp32 on this CPU, at or above the 1.15x rule)"
    assert cv.decide(120.0, 100.0).file == INT8_FILE and cv.decide(110.0, 100.0).file == FP32_FILE


def test_a_forced_setting_wins_over_the_timings():
    assert cv.decide(200.0, 100.0, "fp32").variant == "fp32"
    assert cv.decide(50.0, 100.0, "int8").variant == "int8"
    assert cv.decide(None, None, "fp32").describe() == "fp32 (forced by MOESEARCH_ONNX_VARIANT=fp32; not measured)"
    assert "int8 2.00x fp32" in cv.decide(200.0, 100.0, "fp32").describe()
    with pytest.raises(ValueError, match="needs both timings"):
        cv.decide(None, None)
    with pytest.raises(ValueError, match="MOESEARCH_ONNX_VARIANT must be one of"):
        cv.decide(1.0, 1.0, "fp16")


def test_choice_and_calibration_are_validated():
    with pytest.raises(ValueError, match="variant must be one of"):
        cv.Choice("gather")
    with pytest.raises(ValueError, match="positive"):
        cv.Choice("int8", int8_texts_per_s=-1.0, fp32_texts_per_s=1.0)
    with pytest.raises(ValueError, match="both timings or neither"):
        cv.Choice("int8", int8_texts_per_s=1.0)
    with pytest.raises(ValueError, match="files must name exactly"):
        cv.Calibration(1.0, 1.0, {INT8_FILE: "x"}, cv.CpuInfo("cpu"))
    with pytest.raises(ValueError, match="flags must be among"):
        cv.CpuInfo("cpu", ("sse2",))


def test_cpu_info_keeps_the_model_and_the_int8_relevant_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7502P 32-Core Processor\n"
                    "flags\t\t: fpu sse2 avx2 fma avx512f\n\nprocessor\t: 1\nmodel name\t: other\n")
    cpu = cv.CpuInfo.read(info)
    assert cpu == cv.CpuInfo("AMD EPYC 7502P 32-Core Processor", ("avx2", "avx512f"))
    assert cpu.describe() == "AMD EPYC 7502P 32-Core Processor (avx2 avx512f)"
    assert cv.CpuInfo.read(tmp_path / "missing").model  # not Linux: still a name


def test_timing_warms_up_interleaves_and_stops_at_the_budget():
    now, calls = [0.0], []

    def run(name, cost):
        def go():
            calls.append(name)
            now[0] += cost
        return go

    times = cv.time_runs({"int8": run("int8", 1.0), "fp32": run("fp32", 2.0)}, repeats=5, budget_s=7.0,
                         clock=lambda: now[0])
    assert calls[:2] == ["int8", "fp32"]  # the warm-up, untimed
    assert calls[2:] == ["int8", "fp32", "fp32", "int8"]  # rounds alternate the order; the budget ends round 2
    assert times == {"int8": [1.0, 1.0], "fp32": [2.0, 2.0]}
    times = cv.time_runs({"a": run("a", 5.0)}, repeats=3, budget_s=1.0, clock=lambda: now[0])
    assert times == {"a": [5.0]}  # at least one timed run, however slow


def test_calibration_texts_are_fixed_and_long_enough():
    texts = cv.calibration_texts()
    assert texts == cv.calibration_texts() and len(texts) == cv.TEXTS
    assert all(len(t.split()) >= cv.TOKENS for t in texts)


# --- prepare writes it, the runtime reads it ----------------------------------------------------------------------
def test_prepare_measures_writes_variant_json_and_the_runtime_serves_it(model, capsys):
    assert main(["prepare", str(model)]) == 0
    out = capsys.readouterr().out
    assert "onnx is up to date" in out and "serving" in out
    data = json.loads((model / "onnx" / cv.VARIANT_JSON).read_text())
    manifest = json.loads((model / "onnx" / "manifest.json").read_text())["files"]
    assert data["files"] == {name: manifest[name]["sha256"] for name in (INT8_FILE, FP32_FILE)}
    assert data["int8_texts_per_s"] > 0 and data["fp32_texts_per_s"] > 0
    assert data["min_int8_speedup"] == cv.MIN_INT8_SPEEDUP and data["cpu"]["model"] == cv.CpuInfo.read().model
    assert len(data["runs_s"]["int8"]) == len(data["runs_s"]["fp32"]) >= 1 and data["texts"] == cv.TEXTS
    assert data["choice"] == cv.decide(data["int8_texts_per_s"], data["fp32_texts_per_s"]).variant
    emb = Embedder(model, device="cpu")
    assert emb.model_file.name == data["file"] and emb.cpu_choice.variant == data["choice"]
    assert emb.cpu_choice.int8_texts_per_s == data["int8_texts_per_s"]

    assert main(["prepare", str(model)]) == 0  # current: nothing exported, nothing timed again
    assert f"{cv.VARIANT_JSON} is up to date: serving {data['choice']}" in capsys.readouterr().out
    assert main(["prepare", str(model), "--remeasure"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_prepare_exports_the_fp32_cpu_file_when_missing(model, capsys):
    (model / "onnx" / FP32_FILE).unlink()
    assert main(["prepare", str(model)]) == 0
    assert f"({cv.CPU_FP32})" in capsys.readouterr().out.splitlines()[0]  # only the missing file was exported
    assert (model / "onnx" / FP32_FILE).is_file() and (model / "onnx" / cv.VARIANT_JSON).is_file()


@pytest.mark.parametrize(("int8", "fp32", "served"), [(120.0, 100.0, INT8_FILE), (110.0, 100.0, FP32_FILE)])
def test_the_runtime_serves_the_recorded_choice(model, int8, fp32, served):
    record(model, int8, fp32)
    emb = Embedder(model, device="cpu")
    assert emb.model_file.name == served and emb.cpu_choice.ratio == pytest.approx(int8 / fp32)


def test_without_variant_json_int8_serves_with_a_warning(model, caplog):
    with caplog.at_level(logging.INFO, logger="embedder.cpu_variant"):
        emb = Embedder(model, device="cpu")
    assert emb.model_file.name == INT8_FILE and emb.cpu_choice.unmeasured == f"no {cv.VARIANT_JSON}"
    assert "python -m embedder prepare" in caplog.text
    assert "not measured" in emb.cpu_choice.describe()


def test_a_stale_variant_json_is_ignored_with_a_warning(model, caplog):
    path = record(model, 100.0, 100.0)  # says fp32
    data = json.loads(path.read_text())
    data["files"][INT8_FILE] = "0" * 64  # as if the int8 file had been re-exported since
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="embedder.cpu_variant"):
        emb = Embedder(model, device="cpu")
    assert emb.model_file.name == INT8_FILE and "re-exported" in emb.cpu_choice.unmeasured
    assert "python -m embedder prepare" in caplog.text

    record(model, 100.0, 100.0, cpu=cv.CpuInfo("Some Other CPU", ("avx2",)))  # measured on another host
    emb = Embedder(model, device="cpu")
    assert emb.model_file.name == INT8_FILE and "Some Other CPU" in emb.cpu_choice.unmeasured

    record(model, 100.0, 100.0)
    (model / "onnx" / FP32_FILE).unlink()  # the chosen file is gone: stale, and said so
    emb = Embedder(model, device="cpu")
    assert emb.model_file.name == INT8_FILE and FP32_FILE in emb.cpu_choice.unmeasured


def test_the_setting_forces_a_variant_and_a_missing_forced_file_is_an_error(model):
    record(model, 200.0, 100.0)  # int8 measured faster
    emb = Embedder(model, device="cpu", cpu_variant="fp32")
    assert emb.model_file.name == FP32_FILE and emb.cpu_choice.setting == "fp32"
    assert emb.cpu_choice.describe().startswith("fp32 (forced by MOESEARCH_ONNX_VARIANT=fp32; int8 2.00x")
    (model / "onnx" / FP32_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"model.gather-fp32.onnx is missing; run `python -m embedder prep"):
        Embedder(model, device="cpu", cpu_variant="fp32")
    with pytest.raises(ValueError, match="cpu_variant must be one of"):
        Embedder(model, device="cpu", cpu_variant="gather")


def test_an_explicit_variant_is_served_as_before(model):
    record(model, 100.0, 100.0)  # the record says fp32
    emb = Embedder(model, device="cpu", variant="int8")
    assert emb.model_file.name == INT8_FILE and emb.cpu_choice is None
    assert Embedder(model, device="cpu", variant="fused").model_file.name == ONNX_FILES["fused"]
