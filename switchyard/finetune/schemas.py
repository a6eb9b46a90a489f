"""The kwargs of ``switchyard.finetune.train``: OpenAI's create-job body plus our hyperparameters.

``method`` follows OpenAI's shape (``{"type": ..., "<type>": {"hyperparameters": {...}}}``) and also
accepts our own types ``lora`` and ``qlora`` (``supervised`` means ``lora``) with a flat
``hyperparameters`` object. Any hyperparameter may be ``"auto"``; ``presets.resolve`` sizes it from the
model and the data when the job starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # OpenAI's names
    n_epochs: int | Auto = Field(default="auto", description="passes over the training data")
    batch_size: int | Auto = Field(default="auto", description="examples per optimizer micro-batch")
    learning_rate_multiplier: float | Auto = Field(default="auto", gt=0,
                                                   description="scales the preset learning rate")
    # Ours
    learning_rate: float | Auto = Field(default="auto", gt=0, lt=1)
    r: int | Auto = Field(default="auto", description="LoRA rank")
    lora_alpha: int | Auto = "auto"
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    use_rslora: bool = Field(default=False, description="rank-stabilised LoRA scaling alpha/sqrt(r)")
    use_dora: bool = Field(default=False, description="weight-decomposed LoRA")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    max_length: int | Auto = Field(default="auto", description="tokens per example (longer lines fail validation)")
    packing: bool = Field(default=False, description="pack several examples into one max_length row")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    eval_interval: int | Auto = Field(default="auto", description="optimizer steps between eval passes")
    validation_split: float = Field(default=0.0, ge=0, lt=0.5,
                                    description="share of training lines held out when no validation_file")
    early_stopping_patience: int | None = Field(default=None, ge=1,
                                                description="evals without improvement before stopping")
    early_stopping_threshold: float = Field(default=0.0, ge=0)
    checkpoint_interval: int | Auto = Field(default="auto", description="optimizer steps between checkpoints")
    gradient_checkpointing: bool = False
    # QLoRA
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # Training precision of the non-quantized weights (LoRA): auto = bf16 on a GPU that has it, else fp32.
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"

    @model_validator(mode="after")
    def _positive(self) -> Hyperparameters:
        for name in ("n_epochs", "batch_size", "r", "lora_alpha", "max_length", "eval_interval",
                     "checkpoint_interval"):
            value = getattr(self, name)
            if value != "auto" and value < 1:
                raise ValueError(f"{name} must be at least 1 or 'auto'")
        return self


class _Nested(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["lora", "qlora", "supervised"] = "lora"
    hyperparameters: Hyperparameters | None = None
    supervised: _Nested | None = None
    lora: _Nested | None = None
    qlora: _Nested | None = None

    @property
    def adapter_type(self) -> Literal["lora", "qlora"]:
        return "qlora" if self.type == "qlora" else "lora"

    def merged_hyperparameters(self) -> Hyperparameters:
        """The one hyperparameters object, wherever the caller put it (flat or OpenAI-nested)."""
        nested = getattr(self, self.type)
        values: dict[str, Any] = {}
        for source in (nested.hyperparameters if nested else None, self.hyperparameters):
            if source is not None:
                values.update(source.model_dump(exclude_unset=True))
        return Hyperparameters(**values)


class TrainParams(BaseModel):
    """kwargs of ``switchyard.finetune.train``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="a registered base model name or a local model directory")
    training_file: str = Field(min_length=1, description="an uploaded file id (file-...), a path or an fsspec URL")
    validation_file: str | None = None
    method: Method = Field(default_factory=Method)
    # Deprecated in OpenAI's API, still accepted: merged under method.hyperparameters.
    hyperparameters: Hyperparameters | None = None
    suffix: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None

    def resolved_hyperparameters(self) -> Hyperparameters:
        merged = self.method.merged_hyperparameters().model_dump(exclude_unset=True)
        if self.hyperparameters is not None:
            merged = {**self.hyperparameters.model_dump(exclude_unset=True), **merged}
        return Hyperparameters(**merged)
