"""Versioned model folders: content-addressed, immutable, atomically published, resolvable by name or version."""

import os
import shutil

import pytest
from safetensors.numpy import load_file, save_file

from embedder import registry
from embedder.registry import (
    ModelRef,
    default_model_dir,
    publish,
    removable,
    remove_version,
    resolve,
    set_current,
    versions,
)


def variant_of(folder, dst, bump=1.0):
    """A copy of a model folder with different weights (same model id): what a retrain into one folder makes."""
    shutil.copytree(folder, dst, ignore=shutil.ignore_patterns("onnx"))
    w = load_file(str(dst / "model.safetensors"))
    key = sorted(w)[0]
    w[key] = w[key] + bump
    save_file(w, str(dst / "model.safetensors"))
    return dst


def test_publish_resolve_and_rollback(tiny_model_dir, tmp_path):
    root = tmp_path / "models" / "demo"
    a = publish(tiny_model_dir, root)
    assert a.folder == root / a.version and len(a.version) == 12 and a.name == "demo"
    assert (root / "current").read_text().strip() == a.version
    assert not (a.folder / "onnx").exists()  # derived files are rebuilt by `embedder prepare`, never published
    b_src = variant_of(tiny_model_dir, tmp_path / "b")
    b = publish(b_src, root)
    assert b.version != a.version and versions(root) == [a.version, b.version]
    assert resolve(root) == b and resolve(f"{root}@{a.version}") == a
    assert resolve(a.folder) == a  # one exact version folder knows its name
    assert resolve("demo", models_dir=tmp_path / "models") == b
    assert (a.folder / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    set_current(root, a.version)  # rollback is a pointer move
    assert resolve(root) == a
    assert publish(b_src, root, make_current=False) == b  # same weights again: nothing rewritten
    assert resolve(root) == a


def test_resolve_errors_name_what_exists(tiny_model_dir, tmp_path):
    root = tmp_path / "demo"
    a = publish(tiny_model_dir, root)
    with pytest.raises(FileNotFoundError, match=rf"no version 'feedbeef'; published: \['{a.version}'\]"):
        resolve(f"{root}@feedbeef")
    with pytest.raises(FileNotFoundError, match="no model there"):
        resolve(tmp_path / "nothing")
    plain = resolve(tiny_model_dir)  # the pre-registry layout still works
    assert plain.folder == tiny_model_dir and plain.name is None and len(plain.version) == 12
    with pytest.raises(ValueError, match="plain model folder"):
        publish(tiny_model_dir, tiny_model_dir)


def test_gc_keeps_current_and_in_use(tiny_model_dir, tmp_path):
    root = tmp_path / "demo"
    a = publish(tiny_model_dir, root)
    b = publish(variant_of(tiny_model_dir, tmp_path / "b"), root)
    c = publish(variant_of(tiny_model_dir, tmp_path / "c", 2.0), root)
    assert removable(root, in_use={b.version}) == [a.version]
    with pytest.raises(ValueError, match="is current"):
        remove_version(root, c.version)
    remove_version(root, a.version)
    assert versions(root) == [b.version, c.version]


def test_interrupted_publish_leaves_nothing_visible(tiny_model_dir, tmp_path, monkeypatch):
    root = tmp_path / "demo"
    a = publish(tiny_model_dir, root)

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(registry.os, "rename", crash)
    with pytest.raises(OSError, match="disk full"):
        publish(variant_of(tiny_model_dir, tmp_path / "b"), root)
    assert versions(root) == [a.version] and resolve(root) == a
    assert sorted(p.name for p in root.iterdir()) == sorted([a.version, "current"])  # the half copy is gone


def test_default_model_follows_the_pointer(tiny_model_dir, tmp_path, monkeypatch):
    root = tmp_path / "demo"
    a = publish(tiny_model_dir, root)
    monkeypatch.setenv("MOESEARCH_MODEL", str(root))
    assert default_model_dir() == a.folder
    b = publish(variant_of(tiny_model_dir, tmp_path / "b"), root)
    assert default_model_dir() == b.folder
    monkeypatch.setenv("MOESEARCH_MODEL", f"{root}@{a.version}")
    assert default_model_dir() == a.folder
    assert isinstance(resolve(os.environ["MOESEARCH_MODEL"]), ModelRef)


def test_cli_publish_versions_and_prepare_by_name(tiny_model_dir, tmp_path, capsys):
    from embedder.__main__ import main

    root = tmp_path / "reg" / "demo"
    assert main(["publish", str(tiny_model_dir), "--name", str(root)]) == 0
    version = resolve(root).version
    assert f"published demo@{version}" in capsys.readouterr().out
    assert main(["versions", str(root)]) == 0
    assert f"* {version}" in capsys.readouterr().out
    assert main(["prepare", str(root)]) == 0  # exports into the current version's folder
    assert (root / version / "onnx" / "model.cpu-int8.onnx").is_file()
    from embedder.runtime import Embedder

    emb = Embedder(f"{root}@{version}", device="cpu")
    assert emb.model_dir == root / version and emb.model_version == version
