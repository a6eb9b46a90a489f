from __future__ import annotations

import pytest

from switchyard import task_catalog
from switchyard.errors import InvalidParamsError
from switchyard.finetune import presets
from switchyard.finetune.schemas import Hyperparameters, TrainParams


def test_openai_nested_method_and_legacy_hyperparameters_merge():
    params = TrainParams(model="m", training_file="file-1", hyperparameters={"batch_size": 2, "n_epochs": 9},
                         method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}})
    hp = params.resolved_hyperparameters()
    assert params.method.adapter_type == "lora" and hp.n_epochs == 3 and hp.batch_size == 2


def test_our_types_take_flat_hyperparameters():
    params = TrainParams(model="m", training_file="f", method={"type": "qlora", "hyperparameters": {
        "r": 4, "use_dora": True, "use_rslora": True, "target_modules": ["q_proj"], "bnb_4bit_quant_type": "fp4"}})
    hp = params.resolved_hyperparameters()
    assert params.method.adapter_type == "qlora" and hp.r == 4 and hp.use_dora and hp.target_modules == ["q_proj"]


@pytest.mark.parametrize("bad", [
    {"method": {"type": "dpo"}},
    {"method": {"type": "lora", "hyperparameters": {"r": 0}}},
    {"method": {"type": "lora", "hyperparameters": {"learning_rate": 2}}},
    {"method": {"type": "lora", "hyperparameters": {"unknown": 1}}},
    {"suffix": "has space"},
    {"training_file": ""},
])
def test_the_registered_schema_rejects_bad_messages(bad):
    with pytest.raises(InvalidParamsError):
        task_catalog.validate_params("switchyard.finetune.train", {"model": "m", "training_file": "f", **bad})


def test_json_schema_is_published():
    schema = task_catalog.json_schema("switchyard.finetune.train")
    assert {"model", "training_file"} <= set(schema["required"]) and "method" in schema["properties"]


def resolve(hp: Hyperparameters, **kw):
    args = dict(model="m", model_path="/m", method="lora", seed=0, hidden_size=64, n_train_examples=28,
                n_train_rows=28, longest=70, model_max=1024)
    return presets.resolve(hp, **{**args, **kw})


def test_auto_presets_follow_the_documented_rules():
    cfg = resolve(Hyperparameters())
    assert (cfg.r, cfg.lora_alpha, cfg.learning_rate, cfg.batch_size, cfg.max_length) == (8, 16, 2e-4, 1, 128)
    assert cfg.n_epochs == 4 and cfg.total_steps == 112  # ~100 steps for a small set
    assert cfg.eval_interval == 11 and cfg.checkpoint_interval == 22 and cfg.dtype == "float32"
    big = resolve(Hyperparameters(), hidden_size=4096, n_train_examples=10_000, n_train_rows=10_000)
    assert big.r == 16 and big.batch_size == 8 and big.n_epochs == 3


def test_explicit_values_win_and_max_steps_caps():
    cfg = resolve(Hyperparameters(r=4, batch_size=4, n_epochs=2, learning_rate_multiplier=0.5, max_steps=5,
                                  gradient_accumulation_steps=2))
    assert (cfg.r, cfg.lora_alpha, cfg.learning_rate) == (4, 8, 1e-4)
    assert cfg.total_steps == 5 and cfg.openai_hyperparameters == {
        "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}
