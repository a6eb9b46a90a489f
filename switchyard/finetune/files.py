"""Uploaded training files (OpenAI ``/v1/files``): a row in ``finetune_files``, content in the artifact store."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fsspec
import httpx

from switchyard import disk, egress, sandbox
from switchyard.db import connection
from switchyard.errors import NotFoundError
from switchyard.finetune.config import get_finetune_settings

INSERT_SQL = """
INSERT INTO finetune_files (id, tenant, filename, purpose, bytes, url)
VALUES (%(id)s, %(tenant)s, %(filename)s, %(purpose)s, %(bytes)s, %(url)s) RETURNING *
"""
GET_SQL = "SELECT * FROM finetune_files WHERE id = %(id)s AND tenant = %(tenant)s"
LIST_SQL = """
SELECT * FROM finetune_files
WHERE tenant = %(tenant)s AND (%(purpose)s::text IS NULL OR purpose = %(purpose)s)
  AND (%(after)s::text IS NULL OR (created_at, id) <
       (SELECT created_at, id FROM finetune_files WHERE id = %(after)s))
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
DELETE_SQL = "DELETE FROM finetune_files WHERE id = %(id)s AND tenant = %(tenant)s RETURNING *"


class UploadedFileNotFoundError(NotFoundError, LookupError):
    """No uploaded file has that id (for this tenant)."""


FileNotFound = UploadedFileNotFoundError  # the earlier name, still used by callers


@dataclass(frozen=True)
class StoredFile:
    id: str
    tenant: str
    filename: str
    purpose: str
    bytes: int
    url: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredFile:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": self.bytes,
                "created_at": int(self.created_at.timestamp()), "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "status_details": None,
                "expires_at": None}


def save_file(content: bytes, filename: str, purpose: str, tenant: str = "default") -> StoredFile:
    """Store an upload, then record it. On a full disk (``DiskFullError``) no half file stays behind and
    nothing is recorded."""
    file_id = f"file-{secrets.token_hex(12)}"
    url = f"{get_finetune_settings().artifacts_root.rstrip('/')}/files/{file_id}.jsonl"
    fs, path = fsspec.core.url_to_fs(url)

    def remove_partial() -> None:
        if fs.exists(path):
            fs.rm(path)

    with disk.writing(f"upload {filename!r}", url, cleanup=remove_partial), \
            fsspec.open(url, "wb", auto_mkdir=True) as f:
        f.write(content)
    with connection() as conn:
        row = conn.execute(INSERT_SQL, {"id": file_id, "tenant": tenant, "filename": filename,
                                        "purpose": purpose, "bytes": len(content), "url": url}).fetchone()
    return StoredFile.from_row(row)


def get_file(file_id: str, tenant: str) -> StoredFile:
    with connection() as conn:
        row = conn.execute(GET_SQL, {"id": file_id, "tenant": tenant}).fetchone()
    if row is None:
        raise FileNotFound(f"No such File object: {file_id}")
    return StoredFile.from_row(row)


def list_files(tenant: str, *, purpose: str | None = None, after: str | None = None,
               limit: int = 100) -> list[StoredFile]:
    with connection() as conn:
        rows = conn.execute(LIST_SQL, {"tenant": tenant, "purpose": purpose, "after": after,
                                       "limit": limit}).fetchall()
    return [StoredFile.from_row(r) for r in rows]


def delete_file(file_id: str, tenant: str) -> StoredFile:
    with connection() as conn:
        row = conn.execute(DELETE_SQL, {"id": file_id, "tenant": tenant}).fetchone()
    if row is None:
        raise FileNotFound(f"No such File object: {file_id}")
    stored = StoredFile.from_row(row)
    fs, path = fsspec.core.url_to_fs(stored.url)
    if fs.exists(path):
        fs.rm(path)
    return stored


def read_bytes(ref: str, tenant: str) -> bytes:
    """A training file's content: an uploaded file id (``file-...``) of ``tenant``, a local path or an
    fsspec URL. A path or URL the caller named must pass the input policy first (``InputRefused``):
    http(s) URLs the egress policy, anything else the file roots (docs/security-inputs.md)."""
    if ref.startswith("file-"):
        url = get_file(ref, tenant).url
    elif ref.lower().startswith(("http://", "https://")):
        try:
            return egress.fetch(ref, max_bytes=get_finetune_settings().max_file_bytes)[0]
        except httpx.HTTPError as exc:
            raise FileNotFound(f"training data cannot be fetched: {ref}: {exc}") from None
    else:
        url = sandbox.check_ref(ref)
    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFound(f"training data not found: {ref}") from None
