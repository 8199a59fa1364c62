"""Licence-clean defaults: non-commercial sources are refused without --research, every used source's licence is
written into the run folder, and the model licence follows from them."""

import json

import pytest

from trainer.config import DataConfig, RecipeConfig, load_config
from trainer.licences import ALL_SOURCES, COMMERCIAL_SOURCES, LICENCES, USER_LICENCE, model_licence, used_licences
from trainer.recipe import write_licences


def test_defaults_are_commercial_and_the_shipped_recipe_is_licence_clean():
    assert set(COMMERCIAL_SOURCES) < set(ALL_SOURCES)
    assert {"gem", "multiemo", "squad_shifts_web"} == set(ALL_SOURCES) - set(COMMERCIAL_SOURCES)
    assert "scifact" not in ALL_SOURCES  # held out as a whole, not a source
    assert DataConfig().sources == COMMERCIAL_SOURCES
    cfg = load_config("trainer/configs/recipe.toml")
    assert not cfg.research and all(LICENCES[s].commercial for s in cfg.data.sources)
    assert not any("scifact" in c for c in cfg.mine.corpora) and "scifact" not in cfg.mine.sources
    assert not any(w.startswith("scifact") for w in cfg.finetune.source_weights)


def test_non_commercial_source_is_refused_naming_it_and_its_licence():
    with pytest.raises(ValueError, match=r"multiemo: CC BY-NC-SA 4\.0.*--research=true"):
        load_config(None, {"data.sources": "wordnet,multiemo"})
    with pytest.raises(ValueError, match="gem: non-commercial"):
        RecipeConfig(data=DataConfig(sources=("gem",)))
    cfg = load_config(None, {"data.sources": "wordnet,multiemo", "research": "true"})
    assert cfg.research and cfg.data.sources == ("wordnet", "multiemo")


def manifest():
    return {"sources": {
        "wordnet": {"source": "wordnet", "licence": LICENCES["wordnet"].licence, "commercial": True,
                    "origin": "deb", "file": "pairs/wordnet.jsonl", "written": 5},
        "squad_shifts-reddit": {"source": "squad_shifts_web", "licence": LICENCES["squad_shifts_web"].licence,
                                "commercial": False, "origin": "bb", "file": "pairs/squad_shifts-reddit.jsonl"},
        "user-mine": {"source": "user-mine", "licence": USER_LICENCE, "commercial": False, "origin": "x.jsonl",
                      "file": "pairs/user-mine.jsonl"}}}


def test_run_folder_gets_every_used_licence_and_the_model_licence(tmp_path):
    data = tmp_path / "data"
    cfg = RecipeConfig()
    info = write_licences(cfg, manifest(), [str(data / "pairs/wordnet.jsonl"), str(data / "pairs/user-mine.jsonl")],
                          data, tmp_path)
    saved = json.loads((tmp_path / "licences.json").read_text())
    assert saved == info and set(saved["sources"]) == {"wordnet", "user-mine"}
    assert saved["sources"]["wordnet"]["licence"].startswith("WordNet 3.0")
    lic = saved["model_licence"]
    assert lic.startswith("Apache-2.0") and "user-supplied data (user-mine)" in lic
    assert json.loads((tmp_path / "data_manifest.json").read_text()) == manifest()


def test_a_stale_non_commercial_file_in_the_manifest_is_refused_without_research(tmp_path):
    data = tmp_path / "data"
    files = [str(data / "pairs/wordnet.jsonl"), str(data / "pairs/squad_shifts-reddit.jsonl")]
    with pytest.raises(ValueError, match="squad_shifts-reddit: CC BY 4.0 annotations over Reddit"):
        write_licences(RecipeConfig(), manifest(), files, data, tmp_path)
    info = write_licences(RecipeConfig(research=True), manifest(), files, data, tmp_path)
    assert info["model_licence"].startswith("Research / non-commercial use only") and "squad_shifts-reddit" in \
        info["model_licence"]


def test_model_licence_of_commercial_sources_only():
    used = used_licences(manifest(), ["wordnet"])
    assert used["wordnet"]["commercial"] and model_licence(used).startswith("Apache-2.0")
    assert "user-supplied" not in model_licence(used)


def test_multilingual_sources_are_classified_and_the_multilingual_recipe_is_licence_clean():
    assert LICENCES["django_l10n"].commercial and LICENCES["django_l10n"].licence.startswith("BSD-3-Clause")
    assert "django==" in LICENCES["django_l10n"].origin and "django_l10n" in COMMERCIAL_SOURCES
    cfg = load_config("trainer/configs/multilingual.toml")
    assert not cfg.research and all(LICENCES[s].commercial for s in cfg.data.sources)
    with pytest.raises(ValueError, match="multiemo"):  # its multilingual reviews stay non-commercial
        load_config("trainer/configs/multilingual.toml", {"data.sources": "django_l10n,multiemo"})
