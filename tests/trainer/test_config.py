"""Recipe config: TOML + --key=value overrides, unknown keys and bad values are errors naming what is allowed."""

import json
from pathlib import Path

import pytest

from trainer.__main__ import main
from trainer.config import RecipeConfig, StageConfig, load_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert isinstance(cfg, RecipeConfig) and cfg.pretrain.name == "pretrain" and cfg.finetune.name == "finetune"


def test_overrides_are_typed_and_section_scoped(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 3\n[pretrain]\nsteps = 7\nmatryoshka_dims = [384, 128]\n[finetune]\nlr = 1e-5\n')
    cfg = load_config(f, parse_overrides(["--steps=9", "--symmetric=true", "--finetune.num_negs=2",
                                          "--eval.beir=a,b:dev", "--top_k=1"]), section="pretrain")
    assert cfg.seed == 3 and cfg.top_k == 1
    assert cfg.pretrain.steps == 9 and cfg.pretrain.symmetric is True and cfg.pretrain.matryoshka_dims == (384, 128)
    assert cfg.finetune.lr == 1e-5 and cfg.finetune.num_negs == 2 and cfg.finetune.batch_size == 128
    assert cfg.eval.beir == ("a", "b:dev")


@pytest.mark.parametrize("over,msg", [
    ({"pretrain.stepz": "1"}, r"unknown config keys \['pretrain.stepz'\]"),
    ({"nope": "1"}, "unknown config keys"),
    ({"pretrain.steps": "1.5"}, "expected an integer"),
    ({"pretrain.symmetric": "maybe"}, "expected true/false"),
    ({"pretrain.schedule": "step"}, r"schedule must be one of \('linear', 'cosine', 'constant'\)"),
    ({"pretrain.matryoshka_dims": "64,128"}, "largest first"),
    ({"top_k": "9"}, "top_k must be in 1..num_experts"),
    ({"mine.margin": "1.5"}, "margin"),
    ({"data.sources": "squad_shifts,wikipedia"}, "unknown data sources"),
])
def test_bad_keys_and_values_are_errors(over, msg):
    with pytest.raises(ValueError, match=msg):
        load_config(None, over)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[pretrain\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(ValueError, match="must look like --key=value"):
        parse_overrides(["--steps", "3"])


def test_stage_validation():
    with pytest.raises(ValueError, match="batch_size"):
        StageConfig(batch_size=1)
    with pytest.raises(ValueError, match="one weight per dim"):
        StageConfig(matryoshka_dims=(64, 32), matryoshka_weights=(1.0,))


def test_cli_reports_config_errors(capsys):
    assert main(["pretrain", "--stepz=3"]) == 2
    assert "unknown config keys" in capsys.readouterr().err
    assert main(["pretrain", "--steps=3"]) == 2
    assert "needs --train, --init and --out" in capsys.readouterr().err


def test_multilingual_config_is_licence_clean_and_holds_out_every_xquad_language():
    from trainer.heldout import HeldOutError, check_beir
    from trainer.licences import LICENCES
    from trainer.recipe import dense_base, eval_folders

    cfg = load_config(CONFIGS / "multilingual.toml")
    assert cfg.base == "e5" and cfg.prefixes and not cfg.research and cfg.num_experts == 8 and cfg.top_k == 2
    assert all(LICENCES[s].commercial for s in cfg.data.sources)
    assert {"django_l10n", "chatterbot", "wordnet"} <= set(cfg.data.sources)  # bigbench's sources: not obtainable
    assert {"de", "es", "zh_Hans", "ar", "hi", "ru"} <= set(cfg.data.languages)
    folders = [f for spec in cfg.eval.beir for f in eval_folders(spec)]
    names = {f.name for f in folders}
    assert {"scifact", "cranfield", "techfaq"} <= names
    assert {f"xquad-{lang}" for lang in ("en", "de", "es", "zh", "ar", "hi", "ru")} <= names
    assert sum("@" in spec for spec in cfg.eval.beir) == 3  # cross-lingual: questions over English paragraphs
    for folder in folders:  # every evaluation set is held out (by name), so training can never read it
        with pytest.raises(HeldOutError):
            check_beir(folder, "test")
    assert cfg.eval.baseline == "" and cfg.eval.backend == "onnx"  # baseline: the upcycle's committed evaluation
    upcycle = {r["dataset"] for f in ("english", "xquad")
               for r in json.loads((CONFIGS.parents[1] / f"evals/multilingual-e5-moe.int8.{f}.json").read_text())}
    assert {f.name if "@" not in spec else "@".join(Path(p).name for p in spec.split(":")[0].split("@"))
            for spec in cfg.eval.beir for f in eval_folders(spec)[:1]} <= upcycle
    assert not any("xquad" in s or "nyt" in s for s in cfg.mine.sources) and not cfg.mine.corpora
    assert cfg.pretrain.bf16 is False and cfg.pretrain.save_every and cfg.finetune.save_every
    assert dense_base("default") is None and dense_base("some/folder") == Path("some/folder")
    assert eval_folders("a/x@b/y:test") == [Path("a/x"), Path("b/y")] and eval_folders("a/x") == [Path("a/x")]
