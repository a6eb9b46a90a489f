"""The two job functions the ``index`` pool runs (``tasks/index.py`` binds them to their task names)."""

from __future__ import annotations

from typing import Any

from switchyard.context import JobContext
from switchyard.retrieval.schemas import DeleteParams, IngestParams


def ingest_job(params: IngestParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.ingest``: re-index first when asked, then ingest the message's documents."""
    from switchyard.retrieval.ingest import ingest_documents

    if params.reindex and params.model:
        from switchyard.retrieval.reindex import reindex_collection

        done = reindex_collection(params.collection, params.model, tenant=ctx.tenant, ctx=ctx,
                                  chunk_tokens=params.chunk_tokens, chunk_overlap=params.chunk_overlap)
        ctx.message(f"re-indexed into generation {done['generation']}", **done)
        if not params.documents and not params.files:
            return {"documents": 0, "chunks_embedded": done["chunks_embedded"], "chunks_unchanged": 0,
                    "chunks_deleted": 0, "failed": [], "generation": done["generation"]}
    return ingest_documents(params.collection, params.documents, tenant=ctx.tenant, ctx=ctx,
                            files=params.files, model=params.model, chunk_tokens=params.chunk_tokens,
                            chunk_overlap=params.chunk_overlap)


def delete_job(params: DeleteParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.delete``: documents by id, source or filter, with every chunk of them."""
    from switchyard.retrieval import delete_documents

    ctx.raise_if_stopped()
    return delete_documents(params.collection, tenant=ctx.tenant, ids=params.ids, sources=params.sources,
                            filter=params.filter)
