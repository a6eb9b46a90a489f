"""The message contracts of the index pool (README "Indexing"): task kwargs, results, search bodies.

Other systems send these, so fields are only ever added, with defaults.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SearchMode = Literal["hybrid", "vector", "text"]


class DocumentIn(BaseModel):
    """A document sent as text; ``id`` is its stable source id (re-sending it updates it)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class FileIn(BaseModel):
    """A document sent as a file: inline (``content`` text or ``content_base64``) or a ``path``/``url``
    the worker can read. The format comes from ``content_type`` or else the name's extension."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=512, description="defaults to the path, url or name")
    name: str | None = None
    path: str | None = None
    url: str | None = None
    content: str | None = None
    content_base64: str | None = None
    content_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> FileIn:
        given = [k for k in ("path", "url", "content", "content_base64") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, url, content, content_base64")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except ValueError as exc:
                raise ValueError(f"content_base64 is not valid base64: {exc}") from None
        if self.document_id is None:
            raise ValueError("a file sent inline needs an id or a name")
        return self

    @property
    def document_id(self) -> str | None:
        return self.id or self.path or self.url or self.name


# Kept so older producers' messages still validate; the job's tenant is fixed at the way in.
TENANT_DOC = ("deprecated: the job's tenant is who authenticated (API key, webhook source, "
              "`switchyard_tenant` header); if given it must repeat it, else the job is refused")


class IngestParams(BaseModel):
    """kwargs of ``switchyard.index.ingest``."""

    model_config = ConfigDict(extra="forbid")
    collection: str = Field(pattern=NAME_PATTERN)
    tenant: str | None = Field(default=None, pattern=NAME_PATTERN, description=TENANT_DOC)
    documents: list[DocumentIn] = Field(default_factory=list)
    files: list[FileIn] = Field(default_factory=list)
    model: str | None = Field(
        default=None,
        description="embedding model for a new collection (default: SWITCHYARD_EMBEDDING_MODEL); an "
        "existing collection keeps its own unless `reindex` is set",
    )
    reindex: bool = Field(default=False, description="re-embed the collection with `model` into a new "
                          "index generation, switching over atomically when done")
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    chunk_overlap: int | None = Field(default=None, ge=0, le=4096)

    @model_validator(mode="after")
    def _something_to_do(self) -> IngestParams:
        if not self.documents and not self.files and not self.reindex:
            raise ValueError("give documents or files (or reindex)")
        ids = [d.id for d in self.documents] + [f.document_id for f in self.files]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"document ids repeat within the message: {dupes[:5]}")
        if self.reindex and not self.model:
            raise ValueError("reindex needs the new `model`")
        return self


class IngestPartParams(BaseModel):
    """kwargs of ``switchyard.index.ingest_part``: one part of a split ``index.ingest``, sent by the
    parent job itself (switchyard.retrieval.parts); producers send ``index.ingest``."""

    model_config = ConfigDict(extra="forbid")
    collection: str = Field(pattern=NAME_PATTERN)
    parent: str = Field(min_length=1, max_length=256, description="the index.ingest job this is part of")
    part: int = Field(ge=0)
    parts: int = Field(ge=1)
    documents: list[DocumentIn] = Field(default_factory=list)
    files: list[FileIn] = Field(default_factory=list)
    model: str | None = None
    chunk_tokens: int | None = Field(default=None, ge=16, le=8192)
    chunk_overlap: int | None = Field(default=None, ge=0, le=4096)


class DeleteParams(BaseModel):
    """kwargs of ``switchyard.index.delete``: documents by id, by source, or by metadata filter."""

    model_config = ConfigDict(extra="forbid")
    collection: str = Field(pattern=NAME_PATTERN)
    tenant: str | None = Field(default=None, pattern=NAME_PATTERN, description=TENANT_DOC)
    ids: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _some_selector(self) -> DeleteParams:
        if not self.ids and not self.sources and not self.filter:
            raise ValueError("give ids, sources or a non-empty filter (deleting everything takes a filter)")
        return self


class FailedDocument(BaseModel):
    id: str
    error: str


class IngestResult(BaseModel):
    """The result of ``switchyard.index.ingest`` (the job's ``result``)."""

    documents: int = 0
    chunks_embedded: int = 0
    chunks_unchanged: int = 0
    chunks_deleted: int = 0
    failed: list[FailedDocument] = Field(default_factory=list)


class SearchRequest(BaseModel):
    """Body of ``POST /collections/{name}/search``."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=8192)
    k: int = Field(default=5, ge=1, le=1000)
    mode: SearchMode = "hybrid"
    filter: dict[str, Any] | None = None
    tenant: str | None = Field(default=None, pattern=NAME_PATTERN)
