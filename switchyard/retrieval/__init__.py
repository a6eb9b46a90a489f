"""Retrieval: documents into pgvector, idempotently, and hybrid search over them (README "Indexing").

Importing this package loads no model; the embedding model loads on first use.
"""

from __future__ import annotations

from switchyard.retrieval.ingest import ingest_documents
from switchyard.retrieval.query import SearchResult, search
from switchyard.retrieval.schemas import DeleteParams, IngestParams
from switchyard.retrieval.store import CollectionNotFound


def delete_documents(collection: str, *, tenant: str = "default", ids: list[str] | None = None,
                     sources: list[str] | None = None, filter: dict | None = None) -> dict:
    """Delete documents by id, source or metadata filter (every generation's chunks go with them)."""
    from switchyard.retrieval import store

    coll = store.require_collection(tenant, collection)
    return store.delete_documents(coll, ids=ids or [], sources=sources or [], filter=filter)


__all__ = ["CollectionNotFound", "DeleteParams", "IngestParams", "SearchResult", "delete_documents",
           "ingest_documents", "search"]
