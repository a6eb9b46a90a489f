"""File paths a caller names are read only under configured roots (docs/security-inputs.md).

The roots are ``SWITCHYARD_FILE_ROOTS`` (comma-separated local directories or fsspec URL prefixes such
as ``s3://bucket/corpus/``); nothing by default. Uploads of ``/v1/files`` are reached by file id, never
by path. A local path is resolved first
(``os.path.realpath``: symlinks, ``..`` and relative parts) and the resolved path is what is checked
and what the caller then opens, so a symlink inside a root that points outside it is refused. Every
refusal is ``InputRefused`` with ``rule="file_roots"``, raised before anything is read.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from switchyard.config import get_settings
from switchyard.errors import InputRefused

RULE = "file_roots"


def uploads_root() -> str:
    """Where ``/v1/files`` stores uploads (the fine-tune pool's artifact store)."""
    from switchyard.finetune.config import get_finetune_settings  # pydantic only: no torch

    return get_finetune_settings().artifacts_root.rstrip("/") + "/files"


def roots() -> list[str]:
    """The configured roots. Not the uploads directory: every tenant's uploads lie there, so an upload
    is reached by its file id (resolved within the job's tenant), never by path."""
    return [item.strip() for item in get_settings().file_roots.split(",") if item.strip()]


def _split(ref: str) -> tuple[str | None, str]:
    """``("s3", "bucket/key")`` for an fsspec URL, ``(None, path)`` for a local path or ``file://``."""
    if "://" not in ref:
        return None, ref
    protocol, path = ref.split("://", 1)
    protocol = protocol.lower()
    return (None, path) if protocol in ("file", "local") else (protocol, path)


def _refuse(ref: str, why: str = "is outside the allowed file roots") -> InputRefused:
    return InputRefused(f"path {ref!r} {why} (rule {RULE}: SWITCHYARD_FILE_ROOTS; uploads are "
                        "named by file id)", rule=RULE)


def check_path(path: str | os.PathLike[str]) -> Path:
    """The resolved local path if it lies under a local root; else ``InputRefused``."""
    text = os.fspath(path)
    if "\x00" in text:
        raise _refuse(text, "is not a valid path")
    real = os.path.realpath(text)
    for root in roots():
        protocol, root_path = _split(root)
        if protocol is not None:
            continue
        real_root = os.path.realpath(root_path)
        if os.path.commonpath([real, real_root]) == real_root:
            return Path(real)
    raise _refuse(text)


def check_ref(ref: str) -> str:
    """A path or fsspec URL a caller named (``training_file``), as it may be opened; else
    ``InputRefused``. Remote URLs must sit under a root of the same protocol, with no ``..``; chained
    URLs (``simplecache::s3://...``) are refused. http(s) URLs are the egress policy's (not here)."""
    if "::" in ref:
        raise _refuse(ref, "is a chained fsspec URL")
    protocol, path = _split(ref)
    if protocol is None:
        return str(check_path(path))
    if ".." in path.split("/"):
        raise _refuse(ref, "has a '..' segment")
    normalized = posixpath.normpath(path)
    for root in roots():
        root_protocol, root_path = _split(root)
        if root_protocol != protocol:
            continue
        prefix = posixpath.normpath(root_path)
        if normalized == prefix or normalized.startswith(prefix.rstrip("/") + "/"):
            return f"{protocol}://{normalized}"
    raise _refuse(ref)
