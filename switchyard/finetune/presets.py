"""``"auto"`` hyperparameters, sized from the model and the data; the result is the run's full config.

Rules (documented in docs/finetune.md):

- ``r``: 8 up to a hidden size of 2048, 16 up to 4096, else 32; ``lora_alpha``: 2 x r.
- ``learning_rate``: 2e-4 (LoRA and QLoRA), times ``learning_rate_multiplier``.
- ``batch_size``: examples / 16, between 1 and 8.
- ``n_epochs``: 3, or more for small sets so a run makes about 100 optimizer steps (at most 10 epochs).
- ``max_length``: the longest example rounded up to 64, capped by the model's context and 4096.
- ``eval_interval``: a tenth of the run; ``checkpoint_interval``: a fifth of the run.
- compute dtype: bfloat16 on a GPU that supports it, else float16 on a GPU, float32 on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from switchyard.finetune.schemas import Hyperparameters

BASE_LEARNING_RATE = 2e-4
TARGET_STEPS = 100


@dataclass
class RunConfig:
    """Every setting of one training run, concrete: saved in each checkpoint and in the adapter's row."""

    model: str
    model_path: str
    method: str  # lora | qlora
    seed: int
    n_epochs: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[str] | str
    use_rslora: bool
    use_dora: bool
    max_length: int
    packing: bool
    warmup_ratio: float
    lr_scheduler: str
    weight_decay: float
    max_grad_norm: float
    eval_interval: int
    checkpoint_interval: int
    early_stopping_patience: int | None
    early_stopping_threshold: float
    gradient_checkpointing: bool
    dtype: str
    bnb_4bit_quant_type: str
    bnb_4bit_use_double_quant: bool
    bnb_4bit_compute_dtype: str
    n_train_rows: int
    total_steps: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def openai_hyperparameters(self) -> dict[str, Any]:
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": round(self.learning_rate / BASE_LEARNING_RATE, 6)}


def _cuda_dtype() -> str:
    import torch

    if not torch.cuda.is_available():
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def auto_max_length(hp: Hyperparameters, model_max: int | None) -> int:
    if hp.max_length != "auto":
        return hp.max_length
    return min(model_max or 4096, 4096)


def resolve(
    hp: Hyperparameters, *, model: str, model_path: str, method: str, seed: int, hidden_size: int,
    n_train_examples: int, n_train_rows: int, longest: int, model_max: int | None,
) -> RunConfig:
    """Concrete settings for one run; ``n_train_rows`` is after packing."""
    r = hp.r if hp.r != "auto" else 8 if hidden_size <= 2048 else 16 if hidden_size <= 4096 else 32
    batch_size = hp.batch_size if hp.batch_size != "auto" else min(8, max(1, n_train_examples // 16))
    steps_per_epoch = math.ceil(math.ceil(n_train_rows / batch_size) / hp.gradient_accumulation_steps)
    if hp.n_epochs != "auto":
        n_epochs = hp.n_epochs
    else:
        n_epochs = max(3, min(10, math.ceil(TARGET_STEPS / max(steps_per_epoch, 1))))
    total = steps_per_epoch * n_epochs
    if hp.max_steps is not None:
        total = min(total, hp.max_steps) if hp.n_epochs != "auto" else hp.max_steps
    lr = hp.learning_rate if hp.learning_rate != "auto" else BASE_LEARNING_RATE
    if hp.learning_rate_multiplier != "auto":
        lr *= hp.learning_rate_multiplier
    if hp.max_length != "auto":
        max_length = hp.max_length
    else:
        max_length = min(model_max or 4096, 4096, max(64, math.ceil(longest / 64) * 64))
    auto_dtype = _cuda_dtype()
    return RunConfig(
        model=model, model_path=model_path, method=method, seed=seed, n_epochs=n_epochs,
        batch_size=batch_size, gradient_accumulation_steps=hp.gradient_accumulation_steps,
        learning_rate=lr, r=r, lora_alpha=hp.lora_alpha if hp.lora_alpha != "auto" else 2 * r,
        lora_dropout=hp.lora_dropout, target_modules=hp.target_modules, use_rslora=hp.use_rslora,
        use_dora=hp.use_dora, max_length=max_length, packing=hp.packing, warmup_ratio=hp.warmup_ratio,
        lr_scheduler=hp.lr_scheduler, weight_decay=hp.weight_decay, max_grad_norm=hp.max_grad_norm,
        eval_interval=hp.eval_interval if hp.eval_interval != "auto" else max(1, total // 10),
        checkpoint_interval=(hp.checkpoint_interval if hp.checkpoint_interval != "auto"
                             else max(1, total // 5)),
        early_stopping_patience=hp.early_stopping_patience,
        early_stopping_threshold=hp.early_stopping_threshold,
        gradient_checkpointing=hp.gradient_checkpointing,
        dtype=auto_dtype if hp.dtype == "auto" else hp.dtype,
        bnb_4bit_quant_type=hp.bnb_4bit_quant_type, bnb_4bit_use_double_quant=hp.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=auto_dtype if hp.bnb_4bit_compute_dtype == "auto" else hp.bnb_4bit_compute_dtype,
        n_train_rows=n_train_rows, total_steps=max(1, total),
    )
