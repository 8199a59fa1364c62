import json
import shutil

import pytest

from embedder.__main__ import main


@pytest.mark.no_cuda  # asserts the CPU provider and the no-CUDA error
def test_cli_upcycle_export_embed(tiny_dense_dir, tmp_path, capsys):
    out = tmp_path / "cli-model"
    assert main(["upcycle", "--out", str(out), "--dense", str(tiny_dense_dir), "--experts", "4",
                 "--model-id", "cli-test"]) == 0
    assert main(["export", str(out), "--variants", "int8"]) == 0
    assert "model.cpu-int8.onnx" in capsys.readouterr().out
    assert main(["embed", "hello there", "--model", str(out), "--query", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["provider"] == "CPUExecutionProvider" and info["model_id"] == "cli-test"
    assert info["dims"] == len(info["vector"]) == 32 and not info["truncated"]
    assert main(["embed", "x", "--model", str(out), "--device", "cuda"]) == 2
    assert "no CUDA EP" in capsys.readouterr().err


def test_cli_prepare_is_idempotent(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "tiny"  # a copy: prepare writes onnx/variant.json, which the shared fixture must not get
    shutil.copytree(tiny_model_dir, folder)
    assert main(["prepare", str(folder)]) == 0
    assert "onnx is up to date" in capsys.readouterr().out
    assert main(["prepare", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "onnx is up to date" in out and "variant.json is up to date" in out


def test_cli_prepare_refuses_a_missing_custom_model(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nothing")]) == 2
    assert "no model folder" in capsys.readouterr().err
