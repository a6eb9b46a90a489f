"""Fine-tune queue: ``switchyard.finetune.train`` (file validation before the claim, then training)."""

from __future__ import annotations

from typing import Any

from tasks._base import job_task


def _precheck(params: Any, job: Any) -> None:
    from switchyard.finetune.training_job import precheck  # torch/transformers only inside the finetune worker

    precheck(params, job)


def _train(params: Any, ctx: Any) -> Any:
    from switchyard.finetune.training_job import train_job

    return train_job(params, ctx)


train = job_task("switchyard.finetune.train", precheck=_precheck)(_train)
