"""The job functions the ``index`` pool runs (``tasks/index.py`` binds them to their task names)."""

from __future__ import annotations

from typing import Any

from switchyard.cache.versions import collection_changed  # answers cached against a changed collection miss
from switchyard.context import JobContext
from switchyard.retrieval.schemas import DeleteParams, IngestParams, IngestPartParams


def ingest_job(params: IngestParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.ingest``; a collection it changed gets a new LLM-cache version."""
    result = _ingest(params, ctx)
    if (params.reindex and params.model) or result["chunks_embedded"] or result["chunks_deleted"]:
        collection_changed(ctx.tenant, params.collection)
    return result


def _ingest(params: IngestParams, ctx: JobContext) -> dict[str, Any]:
    """Re-index first when asked, then ingest the message's documents."""
    from switchyard.retrieval import parts

    if params.reindex and params.model:
        from switchyard.retrieval.reindex import reindex_collection

        done = reindex_collection(params.collection, params.model, tenant=ctx.tenant, ctx=ctx,
                                  chunk_tokens=params.chunk_tokens, chunk_overlap=params.chunk_overlap)
        ctx.message(f"re-indexed into generation {done['generation']}", **done)
        if not params.documents and not params.files:
            return {"documents": 0, "chunks_embedded": done["chunks_embedded"], "chunks_unchanged": 0,
                    "chunks_deleted": 0, "failed": [], "generation": done["generation"]}
    # A big message runs as sub-jobs the whole pool embeds at once (switchyard.retrieval.parts).
    return parts.ingest(params, ctx)


def ingest_part_job(params: IngestPartParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.ingest_part``: one part of a split ``index.ingest``, sent by its parent."""
    from switchyard.retrieval import parts

    return parts.ingest_part_job(params, ctx)


def delete_job(params: DeleteParams, ctx: JobContext) -> dict[str, Any]:
    """``switchyard.index.delete``: documents by id, source or filter, with every chunk of them."""
    from switchyard.retrieval import delete_documents

    ctx.raise_if_stopped()
    result = delete_documents(params.collection, tenant=ctx.tenant, ids=params.ids, sources=params.sources,
                              filter=params.filter)
    if result["documents"]:
        collection_changed(ctx.tenant, params.collection)
    return result
