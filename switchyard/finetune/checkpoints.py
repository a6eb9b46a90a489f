"""Self-describing training checkpoints: adapter weights, optimizer and scheduler state, step, RNG, config.

A checkpoint is a directory ``<checkpoints_root>/<job_id>/step-NNNNNN`` holding peft's
``adapter_config.json`` + ``adapter_model.safetensors`` and ``trainer_state.pt``. It is written to a
temporary name and renamed, so a worker killed mid-write leaves no half checkpoint; the newest complete
one is where a redelivered job resumes. Each is also listed in ``finetune_checkpoints`` for the API.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from switchyard import disk
from switchyard.db import connection
from switchyard.finetune.config import get_finetune_settings

STATE_FILE = "trainer_state.pt"

RECORD_SQL = """
INSERT INTO finetune_checkpoints (id, job_id, step, path, metrics)
VALUES (%(id)s, %(job_id)s, %(step)s, %(path)s, %(metrics)s)
ON CONFLICT (job_id, step) DO UPDATE SET path = EXCLUDED.path, metrics = EXCLUDED.metrics
RETURNING *
"""
LIST_SQL = """
SELECT * FROM finetune_checkpoints WHERE job_id = %(job_id)s
  AND (%(after)s::text IS NULL OR step < (SELECT step FROM finetune_checkpoints WHERE id = %(after)s))
ORDER BY step DESC LIMIT %(limit)s
"""


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    job_id: str
    step: int
    path: str
    metrics: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CheckpointRecord:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def job_dir(job_id: str) -> Path:
    return get_finetune_settings().checkpoints_root / job_id


def save(model: Any, directory: Path, state: dict[str, Any]) -> Path:
    """Write the adapter and ``state`` (optimizer, scheduler, step, rng, config...) atomically.

    On a full disk the half-written checkpoint is removed and ``DiskFullError`` raised; earlier
    checkpoints are untouched, so the newest of them is still where a resume starts."""
    import torch

    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with disk.writing(f"checkpoint {directory.name}", str(directory),
                      cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):
        model.save_pretrained(tmp)
        # Serialized in memory, written by Python: torch.save to a path reports a full disk as an
        # unrecognisable "unexpected pos"; a Python write raises OSError(ENOSPC/EFBIG).
        buffer = io.BytesIO()
        torch.save(state, buffer)
        (tmp / STATE_FILE).write_bytes(buffer.getbuffer())
        (tmp / "checkpoint.json").write_text(json.dumps(
            {"step": state["step"], "metrics": state.get("metrics", {}), "config": state.get("config", {})},
            indent=2, default=str))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under a job's directory."""
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def load_state(directory: Path) -> dict[str, Any]:
    import torch

    # Our own file, with optimizer state and RNG tensors: not restricted to weights only.
    return torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False)


def record(job_id: str, step: int, path: Path, metrics: dict[str, Any]) -> CheckpointRecord:
    with connection() as conn:
        row = conn.execute(RECORD_SQL, {"id": f"ftckpt-{secrets.token_hex(12)}", "job_id": job_id,
                                        "step": step, "path": str(path),
                                        "metrics": json.dumps(metrics, default=str)}).fetchone()
    return CheckpointRecord.from_row(row)


def list_checkpoints(job_id: str, *, after: str | None = None, limit: int = 10) -> list[CheckpointRecord]:
    with connection() as conn:
        rows = conn.execute(LIST_SQL, {"job_id": job_id, "after": after, "limit": limit}).fetchall()
    return [CheckpointRecord.from_row(r) for r in rows]
