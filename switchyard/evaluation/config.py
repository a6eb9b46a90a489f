"""Evaluation pool settings: environment variables prefixed ``SWITCHYARD_EVAL_`` (docs/eval.md).

Read on each use (not cached): they name worker-side files an operator may put in place while the
worker runs, and tests set them per process.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EvalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_EVAL_", extra="ignore")

    # The Inception network of `fid` and `inception_score`: a local TorchScript file (never downloaded).
    inception_weights: Path | None = Field(default=None, description="e.g. /models/inception-2015-12-05.pt")


def get_eval_settings() -> EvalSettings:
    return EvalSettings()
