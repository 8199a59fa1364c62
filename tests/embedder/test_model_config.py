import pytest

from embedder.config import MoeBertConfig, MoESpec
from embedder.settings import EmbeddingSettings


def test_defaults_follow_nomic_layout():
    cfg = MoeBertConfig()
    assert cfg.moe_layers == [1, 3, 5]
    spec = cfg.moe_spec
    assert (spec.num_experts, spec.num_experts_per_tok, spec.norm_topk_prob) == (8, 2, True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_experts_per_tok=9), "num_experts_per_tok must be in 1..num_experts=8"),
    (dict(expert_activation="relu"), "expert_activation must be one of ('gelu', 'gelu_tanh')"),
    (dict(moe_layers=[6]), "moe_layers must be in 0..5"),
    (dict(hidden_act="relu"), "hidden_act must be one of ('gelu',)"),
    (dict(hidden_size=30, num_attention_heads=4), "divisible"),
])
def test_bad_config_raises_value_error_naming_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MoeBertConfig(**kwargs)


def test_spec_is_frozen_and_normalises_layers():
    spec = MoESpec(num_layers=4, moe_layers=(3, 1, 1))
    assert spec.moe_layers == (1, 3)
    with pytest.raises(AttributeError):
        spec.num_experts_per_tok = 3  # type: ignore[misc]
    assert MoESpec(num_layers=4, moe_layers=()).moe_layers == ()


def test_config_round_trips_through_auto_config(tmp_path):
    from transformers import AutoConfig

    cfg = MoeBertConfig(hidden_size=32, num_attention_heads=4, num_experts=4, moe_layers=[0])
    cfg.save_pretrained(tmp_path)
    back = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(back, MoeBertConfig)
    assert back.moe_spec == cfg.moe_spec
    assert cfg.metadata()["moe.num_experts"] == "4"


def test_embedding_settings_validate_and_round_trip(tmp_path):
    s = EmbeddingSettings(model_id="m", matryoshka_dims=(384, 128))
    s.save(tmp_path)
    assert EmbeddingSettings.load(tmp_path) == s
    assert s.check_dim(None) == 384 and s.check_dim(128) == 128
    with pytest.raises(ValueError, match=r"dim must be one of \(384, 128\)"):
        s.check_dim(100)
    with pytest.raises(ValueError, match="pooling must be one of"):
        EmbeddingSettings(model_id="m", pooling="cls")
    with pytest.raises(ValueError, match="largest first"):
        EmbeddingSettings(model_id="m", matryoshka_dims=(64, 128))
    (tmp_path / "moesearch.json").write_text('{"model_id": "m", "colour": "red"}')
    with pytest.raises(ValueError, match="unknown keys"):
        EmbeddingSettings.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="moesearch.json"):
        EmbeddingSettings.load(tmp_path / "nowhere")
