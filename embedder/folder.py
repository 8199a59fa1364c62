"""The one writer of model folders: what the upcycle, the expert average, the trainer's checkpoints and the recipe's
fp16 copy all write (the folder layout is the contract of ARCHITECTURE.md: ``config.json`` + ``model.safetensors``,
the tokenizer files, ``moesearch.json``, and a ``README.md`` card)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .settings import TOKENIZER_FILES, EmbeddingSettings

CARD = "README.md"


def write_model_folder(dst: str | Path, model, settings: EmbeddingSettings, tokenizer_from: str | Path,
                       card: str | Path | None = None) -> Path:
    """Write ``model`` (a ``MoeBertModel``: config.json + model.safetensors) into ``dst`` with the tokenizer files
    of the folder ``tokenizer_from``, ``settings`` as moesearch.json and ``card``: README text, or a card file to
    copy (if it is there), or None for none.  Files of ``dst`` that are not written are left as they are."""
    dst, tokenizer_from = Path(dst), Path(tokenizer_from)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    if tokenizer_from.resolve() != dst.resolve():
        for name in TOKENIZER_FILES:
            if (tokenizer_from / name).is_file():
                shutil.copyfile(tokenizer_from / name, dst / name)
    settings.save(dst)
    if isinstance(card, str):
        (dst / CARD).write_text(card)
    elif card is not None and Path(card).is_file() and Path(card).resolve() != (dst / CARD).resolve():
        shutil.copyfile(card, dst / CARD)
    return dst
