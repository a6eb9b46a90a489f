"""Fine-tune pool settings: environment variables prefixed ``SWITCHYARD_FINETUNE_``.

Kept beside the pool (not in ``switchyard.config``) because only fine-tune workers, the ``/v1`` API and
the ``adapters`` CLI read them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard.config import get_settings


class FinetuneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_FINETUNE_", extra="ignore")

    # Where adapters and uploaded files go: a local directory or any fsspec URL (s3://..., gs://...).
    # Unset: <STATE_DIR>/artifacts.
    artifacts_url: str | None = None
    # Training checkpoints: a local directory every fine-tune worker can reach (shared disk on a
    # multi-host pool), because a redelivered job resumes from it. Unset: <STATE_DIR>/checkpoints.
    checkpoint_dir: Path | None = None
    # Most adapters one inference process keeps loaded at once (LRU beyond that).
    max_resident_adapters: int = 8
    # Largest accepted upload (bytes).
    max_file_bytes: int = 512 * 1024 * 1024
    # How many bad lines a validation error lists before "and N more".
    max_reported_errors: int = 20

    @property
    def artifacts_root(self) -> str:
        return self.artifacts_url or str((get_settings().state_dir / "artifacts").resolve())

    @property
    def checkpoints_root(self) -> Path:
        return (self.checkpoint_dir or get_settings().state_dir / "checkpoints").resolve()


@lru_cache(maxsize=1)
def get_finetune_settings() -> FinetuneSettings:
    return FinetuneSettings()


def reload_finetune_settings() -> FinetuneSettings:
    get_finetune_settings.cache_clear()
    return get_finetune_settings()
