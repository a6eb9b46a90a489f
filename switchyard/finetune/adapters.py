"""The adapter registry: a row in ``adapters`` (Postgres) and the peft files in the artifact store.

The artifact store is a local directory by default (``<STATE_DIR>/artifacts``) or any fsspec URL
(``SWITCHYARD_FINETUNE_ARTIFACTS_URL``); each adapter is a directory holding ``adapter_config.json`` and
``adapter_model.safetensors``, loadable with ``PeftModel.from_pretrained`` or ``load_adapter``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec

from switchyard import disk
from switchyard.db import connection
from switchyard.errors import NotFoundError
from switchyard.finetune.config import get_finetune_settings

UPSERT_SQL = """
INSERT INTO adapters (name, job_id, tenant, base_model, base_path, method, config, metrics, url)
VALUES (%(name)s, %(job_id)s, %(tenant)s, %(base_model)s, %(base_path)s, %(method)s, %(config)s, %(metrics)s, %(url)s)
ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, metrics = EXCLUDED.metrics, url = EXCLUDED.url,
    base_path = EXCLUDED.base_path
RETURNING *
"""
GET_SQL = "SELECT * FROM adapters WHERE name = %(name)s AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)"
LIST_SQL = """
SELECT * FROM adapters WHERE (%(base)s::text IS NULL OR base_model = %(base)s)
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s) ORDER BY created_at DESC
"""
DELETE_SQL = "DELETE FROM adapters WHERE name = %s RETURNING *"
FILES = ("adapter_config.json", "adapter_model.safetensors")


class AdapterNotFoundError(NotFoundError, LookupError):
    """No adapter is registered under that name."""


AdapterNotFound = AdapterNotFoundError  # the earlier name, still used by callers


@dataclass(frozen=True)
class Adapter:
    name: str
    job_id: str | None
    tenant: str
    base_model: str
    base_path: str
    method: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    url: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Adapter:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat()
        return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def store(model: Any, name: str) -> str:
    """Save a peft model's adapter under ``<artifacts>/adapters/<slug>``; returns its URL."""
    url = f"{get_finetune_settings().artifacts_root.rstrip('/')}/adapters/{_slug(name)}"
    fs, path = fsspec.core.url_to_fs(url)

    def remove_partial() -> None:
        if fs.exists(path):
            fs.rm(path, recursive=True)

    # A full disk fails the job with DiskFullError and leaves no half adapter; checkpoints are kept.
    with tempfile.TemporaryDirectory() as tmp, disk.writing(f"adapter {name}", url, cleanup=remove_partial):
        model.save_pretrained(tmp)
        fs.makedirs(path, exist_ok=True)
        for file in FILES:
            fs.put_file(str(Path(tmp) / file), f"{path}/{file}")
    return url


def register(*, name: str, job_id: str | None, tenant: str, base_model: str, base_path: str, method: str,
             config: dict[str, Any], metrics: dict[str, Any], url: str) -> Adapter:
    """Record an adapter; registering the same name again (a redelivered job) updates it."""
    with connection() as conn:
        row = conn.execute(UPSERT_SQL, {
            "name": name, "job_id": job_id, "tenant": tenant, "base_model": base_model,
            "base_path": base_path, "method": method, "config": json.dumps(config, default=str),
            "metrics": json.dumps(metrics, default=str), "url": url,
        }).fetchone()
    return Adapter.from_row(row)


def get_adapter(name: str, *, tenant: str | None = None) -> Adapter:
    """The adapter named ``name``; with ``tenant``, only if it is that tenant's (else not found)."""
    with connection() as conn:
        row = conn.execute(GET_SQL, {"name": name, "tenant": tenant}).fetchone()
    if row is None:
        raise AdapterNotFound(f"no adapter named {name!r}")
    return Adapter.from_row(row)


def list_adapters(*, base_model: str | None = None, tenant: str | None = None) -> list[Adapter]:
    with connection() as conn:
        rows = conn.execute(LIST_SQL, {"base": base_model, "tenant": tenant}).fetchall()
    return [Adapter.from_row(r) for r in rows]


def delete_adapter(name: str) -> Adapter:
    with connection() as conn:
        row = conn.execute(DELETE_SQL, (name,)).fetchone()
    if row is None:
        raise AdapterNotFound(f"no adapter named {name!r}")
    adapter = Adapter.from_row(row)
    fs, path = fsspec.core.url_to_fs(adapter.url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    return adapter


def local_dir(adapter: Adapter) -> Path:
    """A local directory with the adapter's files (downloaded once into the state dir if remote)."""
    fs, path = fsspec.core.url_to_fs(adapter.url)
    if "file" in fs.protocol or "local" in fs.protocol:
        return Path(path)
    from switchyard.config import get_settings

    cache = get_settings().state_dir.resolve() / "adapter-cache" / _slug(adapter.name)
    if not all((cache / f).is_file() for f in FILES):
        cache.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            fs.get_file(f"{path}/{file}", str(cache / file))
    return cache


def export(name: str, dest: str) -> str:
    """Copy an adapter's files to ``dest`` (a directory path or fsspec URL)."""
    source = local_dir(get_adapter(name))
    fs, path = fsspec.core.url_to_fs(dest)
    fs.makedirs(path, exist_ok=True)
    for file in FILES:
        fs.put_file(str(source / file), f"{path}/{file}")
    return dest


def merge(name: str, dest: str | Path) -> Path:
    """Fold the adapter into a full-precision copy of its base model and save that (plus tokenizer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = get_adapter(name)
    base = AutoModelForCausalLM.from_pretrained(adapter.base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(local_dir(adapter))).merge_and_unload()
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    merged.save_pretrained(dest)
    AutoTokenizer.from_pretrained(adapter.base_path).save_pretrained(dest)
    return dest
