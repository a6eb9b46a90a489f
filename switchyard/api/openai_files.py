"""OpenAI-compatible ``/v1/files`` (upload JSONL for fine-tuning, list, retrieve, content, delete).

Also home of ``OpenAIError``, the ``{"error": {"message", "type", "param", "code"}}`` shape both ``/v1``
routers answer with, so the official ``openai`` client raises its usual exceptions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from switchyard.api.auth import current_tenant
from switchyard.disk import DiskFullError
from switchyard.finetune import files
from switchyard.finetune.config import get_finetune_settings

router = APIRouter(prefix="/v1", tags=["openai: files"])
Tenant = Annotated[str, Depends(current_tenant)]

PURPOSES = frozenset({"fine-tune", "fine-tune-results", "batch", "assistants", "user_data", "evals"})


class OpenAIError(Exception):
    """An error answered in OpenAI's shape and status code."""

    def __init__(self, status_code: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        self.status_code, self.message, self.type, self.param, self.code = status_code, message, type, param, code
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


async def _openai_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


def install(app: FastAPI) -> None:
    if not getattr(app.state, "openai_errors_installed", False):
        app.add_exception_handler(OpenAIError, _openai_error)
        app.state.openai_errors_installed = True


def not_found(kind: str, ref: str) -> OpenAIError:
    return OpenAIError(404, f"No such {kind}: {ref}", param="id", code=None)


def _file(file_id: str, tenant: str) -> files.StoredFile:
    try:
        return files.get_file(file_id, tenant)
    except files.FileNotFound:
        raise not_found("File object", file_id) from None


@router.post("/files", summary="Upload a file (JSONL for purpose=fine-tune)")
async def create_file(tenant: Tenant, file: Annotated[UploadFile, File()],
                      purpose: Annotated[str, Form()]) -> dict[str, Any]:
    if purpose not in PURPOSES:
        raise OpenAIError(400, f"'{purpose}' is not one of {sorted(PURPOSES)} - 'purpose'", param="purpose")
    limit = get_finetune_settings().max_file_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise OpenAIError(413, f"file is larger than {limit} bytes", param="file", code="file_too_large")
    # Contents are validated when a job uses the file (status validating_files), with line numbers,
    # against the job's tokenizer and max_length: the job's error is where callers look (as with OpenAI).
    try:
        stored = files.save_file(content, file.filename or "upload.jsonl", purpose, tenant)
    except DiskFullError as exc:  # nothing was kept: the client may retry once space is freed
        raise OpenAIError(507, str(exc), type="server_error", param="file", code="insufficient_storage") from None
    return stored.to_openai()


@router.get("/files", summary="List files, newest first")
def list_files(tenant: Tenant, purpose: str | None = None, after: str | None = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
               order: str = "desc") -> dict[str, Any]:
    found = files.list_files(tenant, purpose=purpose, after=after, limit=limit + 1)
    page = found[:limit]
    if order == "asc":
        page.reverse()
    return {"object": "list", "data": [f.to_openai() for f in page], "has_more": len(found) > limit,
            "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}


@router.get("/files/{file_id}", summary="A file's metadata")
def retrieve_file(file_id: str, tenant: Tenant) -> dict[str, Any]:
    return _file(file_id, tenant).to_openai()


@router.get("/files/{file_id}/content", summary="A file's content")
def file_content(file_id: str, tenant: Tenant) -> Response:
    stored = _file(file_id, tenant)
    return Response(files.read_bytes(stored.id, tenant), media_type="application/octet-stream")


@router.delete("/files/{file_id}", summary="Delete a file")
def delete_file(file_id: str, tenant: Tenant) -> dict[str, Any]:
    try:
        files.delete_file(file_id, tenant)
    except files.FileNotFound:
        raise not_found("File object", file_id) from None
    return {"id": file_id, "object": "file", "deleted": True}
