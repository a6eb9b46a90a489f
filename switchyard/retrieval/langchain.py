"""LangChain adapters: ``SwitchyardRetriever`` (a ``BaseRetriever`` over ``search``) and
``SwitchyardVectorStore`` (a ``VectorStore`` over a collection). Glue only: the work is in
``switchyard.retrieval``.

The VectorStore follows LangChain's contract: each text is stored as given (callers split first), its
metadata comes back unchanged, and ``add_texts`` with known ids replaces those documents (idempotent by
content hash, like every ingest). The retriever returns switchyard's own structure-aware chunks with
their citations (``source``, ``heading_path``, ``position``) and ``score`` in the metadata.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore

from switchyard.retrieval import store
from switchyard.retrieval.embedding import Embedder, LangChainEmbedder, get_embedder, register_embedder
from switchyard.retrieval.ingest import ingest_documents
from switchyard.retrieval.query import SearchResult, search, search_collection


class SwitchyardRetriever(BaseRetriever):
    """Retrieves chunks of a switchyard collection (hybrid search by default).

    ``invoke(query, k=..., filter=..., mode=...)`` overrides the constructor's settings per call.
    """

    collection: str
    tenant: str = "default"
    k: int = 4
    mode: str = "hybrid"
    filter: dict[str, Any] | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        results = search(self.collection, query, k=kwargs.get("k", self.k), mode=kwargs.get("mode", self.mode),
                         tenant=self.tenant, filter=kwargs.get("filter", self.filter))
        return [to_document(r) for r in results]


def to_document(result: SearchResult) -> Document:
    metadata = {**result.metadata, "document_id": result.document_id, "chunk_id": result.chunk_id,
                "score": result.score}
    return Document(page_content=result.text, metadata=metadata, id=result.chunk_id)


class SwitchyardVectorStore(VectorStore):
    """A collection as a LangChain ``VectorStore``.

    ``embedding`` is any LangChain ``Embeddings``; leave it out to use the collection's own model (the
    bundled all-MiniLM-L6-v2 for a new collection). ``embedding_name`` names a LangChain embedding in the
    embedding cache; give one when two different models would otherwise share a name.
    """

    def __init__(self, collection: str, embedding: Embeddings | None = None, *, tenant: str = "default",
                 embedding_name: str | None = None):
        self.collection = collection
        self.tenant = tenant
        self._embeddings = embedding
        if embedding is not None:
            self._embedder: Embedder = register_embedder(LangChainEmbedder(embedding, embedding_name))
        else:
            existing = store.get_collection(tenant, collection)
            self._embedder = get_embedder(existing.model if existing else None)

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embeddings

    # --- writing -----------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        ids = [i or str(uuid.uuid4()) for i in ids] if ids else [str(uuid.uuid4()) for _ in texts]
        metadatas = metadatas or [{} for _ in texts]
        if not len(texts) == len(ids) == len(metadatas):
            raise ValueError(f"{len(texts)} texts, {len(ids)} ids and {len(metadatas)} metadatas differ")
        docs = [{"id": i, "text": t, "metadata": dict(m or {})} for i, t, m in zip(ids, texts, metadatas,
                                                                                   strict=True)]
        # Last write wins for an id repeated within one call, as for a sequence of upserts.
        latest = {d["id"]: d for d in docs}
        result = ingest_documents(self.collection, list(latest.values()), tenant=self.tenant,
                                  embedder=self._embedder, chunking=False)
        if result["failed"]:
            raise ValueError(f"documents failed: {result['failed']}")
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        coll = store.get_collection(self.tenant, self.collection)
        if coll is None or not ids:
            return True
        store.delete_documents(coll, ids=ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        coll = store.get_collection(self.tenant, self.collection)
        if coll is None or not ids:
            return []
        rows = {r["id"]: r for r in store.get_documents(coll, ids)}
        return [Document(page_content=rows[i]["text"], metadata=rows[i]["metadata"], id=i)
                for i in dict.fromkeys(ids) if i in rows]

    # --- reading -----------------------------------------------------------------------------------
    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        coll = store.get_collection(self.tenant, self.collection)
        if coll is None:
            return []
        return self._search(coll, query, self._embedder.embed_query(query), k, filter,
                            kwargs.get("mode", "vector"))

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict | None = None,
                                    **kwargs: Any) -> list[Document]:
        coll = store.get_collection(self.tenant, self.collection)
        if coll is None:
            return []
        return [doc for doc, _ in self._search(coll, "", embedding, k, filter, "vector")]

    def _search(self, coll: store.Collection, query: str, vector: Any, k: int, filter: dict | None,
                mode: str) -> list[tuple[Document, float]]:
        results = search_collection(coll, query, k=k, mode=mode, filter=filter, vector=vector)
        return [(Document(page_content=r.text, metadata=r.metadata, id=r.document_id), r.score)
                for r in results]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Vector scores are cosine similarities in [-1, 1]; LangChain wants [0, 1].
        return lambda score: (score + 1) / 2

    def as_switchyard_retriever(self, **kwargs: Any) -> SwitchyardRetriever:
        """switchyard's retriever on this collection (chunk citations, hybrid search)."""
        return SwitchyardRetriever(collection=self.collection, tenant=self.tenant, **kwargs)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, collection: str = "langchain", tenant: str = "default",
                   **kwargs: Any) -> SwitchyardVectorStore:
        vs = cls(collection, embedding, tenant=tenant)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs
