"""Objects a job names, resolved within its tenant and the file roots: adapters and model directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NotFound(LookupError):
    """The adapter or model a job names does not exist for its tenant."""


def tenant_adapter(name: str, tenant: str) -> Any:
    """The registered adapter ``name`` if it belongs to ``tenant`` (another tenant's is not found either)."""
    from switchyard.finetune.adapters import AdapterNotFound, get_adapter

    try:
        return get_adapter(name, tenant=tenant)
    except AdapterNotFound:
        raise NotFound(f"no adapter named {name!r}") from None


def model_dir(ref: str) -> Path:
    """A local model directory (checked against the file roots) or a registered base model's path."""
    from switchyard.finetune.models import UnknownModelError, resolve_caller_model

    try:
        return resolve_caller_model(ref)
    except UnknownModelError as exc:
        raise NotFound(str(exc)) from None
