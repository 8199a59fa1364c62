"""The one writer of model folders (embedder/folder.py): the files of the contract, the card as text or copied,
and a folder rewritten in place (a checkpoint of its own source) without copying a file onto itself."""

from __future__ import annotations

import json

from embedder.folder import CARD, write_model_folder
from embedder.model import MoeBertModel
from embedder.settings import SETTINGS_FILE, EmbeddingSettings


def test_a_folder_round_trips_and_its_card_is_written_or_copied(tiny_model_dir, tmp_path):
    model = MoeBertModel.from_pretrained(tiny_model_dir).eval()
    settings = EmbeddingSettings.load(tiny_model_dir)
    assert (tiny_model_dir / CARD).is_file()  # the upcycle's card
    out = write_model_folder(tmp_path / "copy", model, settings, tiny_model_dir, tiny_model_dir / CARD)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", SETTINGS_FILE, CARD} <= names
    assert (out / CARD).read_bytes() == (tiny_model_dir / CARD).read_bytes()
    assert EmbeddingSettings.load(out) == settings
    assert json.loads((out / "config.json").read_text())["num_experts"] == model.config.num_experts
    again = MoeBertModel.from_pretrained(out).eval()
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))

    write_model_folder(out, again, settings, out, "# rewritten\n")  # in place: tokenizer and card not self-copied
    assert (out / CARD).read_text() == "# rewritten\n" and (out / "tokenizer.json").is_file()
    write_model_folder(out, again, settings, out, out / CARD)
    assert (out / CARD).read_text() == "# rewritten\n"
