"""``recipe --publish NAME``: the fp16 copy is written into the run folder and published as a new immutable version
(weights, ONNX, card together); a second publish never rewrites or deletes the first; the switch command names it."""

from __future__ import annotations

from safetensors.numpy import load_file, save_file

from embedder.export import export, is_current
from embedder.registry import resolve, versions
from embedder.settings import MODELS_DIR
from trainer.recipe import publish_fp16, publish_model, registry_root


def test_publish_makes_versions_and_keeps_the_old_one(tiny_model_dir, tmp_path):
    root = tmp_path / "models" / "demo"
    staged = publish_fp16(tiny_model_dir, tmp_path / "run" / "publish")
    export(staged, variants=("int8",))
    (staged / "README.md").write_text("card\n")
    ref, switch = publish_model(staged, str(root))
    assert ref.folder.parent == root and resolve(root) == ref and ref.label == f"demo@{ref.version}"
    assert is_current(ref.folder, variants=("int8",)) and (ref.folder / "README.md").read_text() == "card\n"
    assert switch == f"python -m indexer reindex --model {root}@{ref.version}"
    first = (ref.folder / "model.safetensors").read_bytes()

    w = load_file(str(staged / "model.safetensors"))  # a retrain: other weights through the same staging folder
    key = sorted(w)[0]
    w[key] = w[key] + 1
    retrained = tmp_path / "retrained"
    retrained.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            (retrained / f.name).write_bytes(f.read_bytes())
    save_file(w, str(retrained / "model.safetensors"))
    again = publish_fp16(retrained, tmp_path / "run" / "publish")
    export(again, variants=("int8",))
    ref2, _ = publish_model(again, str(root))
    assert ref2.version != ref.version and resolve(root) == ref2 and versions(root) == [ref.version, ref2.version]
    assert (ref.folder / "model.safetensors").read_bytes() == first and is_current(ref.folder, variants=("int8",))


def test_registry_root_of_a_bare_name_is_under_models(tmp_path):
    assert registry_root("mine") == MODELS_DIR / "mine"
    assert registry_root("models/mine").parts[-2:] == ("models", "mine")
    assert registry_root(str(tmp_path / "x")) == tmp_path / "x"
