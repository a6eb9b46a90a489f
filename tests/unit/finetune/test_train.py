"""The loop on the CPU with a tiny Llama: LoRA and QLoRA learn, the base stays frozen, checkpoints
resume to the same weights, and stop requests end the loop at a step boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from switchyard.errors import JobCancelled, WorkerShuttingDown
from switchyard.finetune import checkpoints
from switchyard.finetune.schemas import TrainParams
from switchyard.finetune.train import add_adapter, fit, load_base, pad_id
from switchyard.finetune.training_job import prepare

DEMO = Path(__file__).resolve().parents[3] / "demo" / "finetune"


def prepared(tiny_model, method="lora", **hyper):
    hp = {"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-2, "eval_interval": 3, "checkpoint_interval": 3,
          "max_steps": 8, **hyper}
    params = TrainParams(model=str(tiny_model), training_file=str(DEMO / "capitals.jsonl"),
                         validation_file=str(DEMO / "capitals_valid.jsonl"),
                         method={"type": method, "hyperparameters": hp})
    return prepare(params, seed=11, tenant="default")


def run(prep, ctx, ckpt: Path | None = None, resume: bool = False):
    model = add_adapter(load_base(str(prep.model_path), prep.cfg.method, prep.cfg), prep.cfg)
    state = fit(model, prep.cfg, prep.train, prep.valid, ctx, pad=pad_id(prep.tokenizer), checkpoint_dir=ckpt,
                resume=resume)
    return model, state


def lora_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_loss_falls_and_metrics_are_reported(tiny_model, recording, method):
    prep = prepared(tiny_model, method, max_steps=10)
    ctx = recording()
    model, state = run(prep, ctx)
    losses = [m["train_loss"] for m in ctx.of("metrics") if "train_loss" in m]
    assert len(losses) == 10 and losses[-1] < losses[0]
    assert state.step == 10 and state.trained_tokens > 0
    start = ctx.of("metrics")[0]
    assert 0 < start["trainable_share"] < 0.5 and start["total_steps"] == 10
    last = ctx.of("metrics")[-1]
    assert {"eval_loss", "eval_token_accuracy", "train_token_accuracy", "tokens_per_second", "peak_memory_mb",
            "learning_rate"} <= set(last)
    if method == "qlora":
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def test_the_base_model_stays_frozen(tiny_model, recording):
    prep = prepared(tiny_model, max_steps=4)
    model = add_adapter(load_base(str(prep.model_path), "lora", prep.cfg), prep.cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    fit(model, prep.cfg, prep.train, prep.valid, recording(), pad=pad_id(prep.tokenizer))
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(not after[n].requires_grad for n in before)


def test_checkpoints_describe_themselves(tiny_model, recording, tmp_path):
    prep = prepared(tiny_model)
    run(prep, recording(), tmp_path)
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["step-000003", "step-000006"]
    state = checkpoints.load_state(tmp_path / "step-000006")
    assert state["step"] == 6 and state["config"]["total_steps"] == 8
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 6
    assert (tmp_path / "step-000006" / "adapter_model.safetensors").is_file()


def test_resume_after_a_shutdown_gives_the_same_adapter_as_an_uninterrupted_run(tiny_model, recording, tmp_path):
    prep = prepared(tiny_model, checkpoint_interval=100)
    straight, _ = run(prep, recording())

    interrupted = recording(stop_at=5, reason=WorkerShuttingDown)
    with pytest.raises(WorkerShuttingDown):
        run(prep, interrupted, tmp_path)
    assert checkpoints.latest(tmp_path).name == "step-000005"  # checkpointed on the way out
    assert "worker shutting down; checkpointed at step 5" in interrupted.of("message")[-1]["text"]

    resumed_ctx = recording(attempt=2)
    resumed, _ = run(prep, resumed_ctx, tmp_path, resume=True)
    assert resumed_ctx.of("message")[0]["text"] == "resumed from checkpoint at step 5 of 8"
    assert [m["step"] for m in resumed_ctx.of("metrics") if "train_loss" in m] == [6, 7, 8]
    a, b = lora_weights(straight), lora_weights(resumed)
    assert all(torch.allclose(a[n], b[n], atol=1e-6) for n in a)


def test_cancel_stops_at_the_next_step_boundary_and_says_so(tiny_model, recording):
    prep = prepared(tiny_model)
    ctx = recording(stop_at=2, reason=JobCancelled)
    with pytest.raises(JobCancelled):
        run(prep, ctx)
    assert [m["step"] for m in ctx.of("metrics") if "train_loss" in m] == [1, 2]
    assert ctx.of("message")[-1]["text"] == "cancelled at step 2 of 8"


def test_early_stopping_ends_the_run(tiny_model, recording):
    prep = prepared(tiny_model, learning_rate=0.5, max_steps=40, n_epochs=10, eval_interval=1,
                    early_stopping_patience=2, early_stopping_threshold=10.0)
    ctx = recording()
    _, state = run(prep, ctx)
    # step 1 sets the best eval loss; steps 2 and 3 do not beat it by the threshold
    assert state.stopped_early and state.step == 3
    assert "early stopping at step 3" in ctx.of("message")[-1]["text"]
