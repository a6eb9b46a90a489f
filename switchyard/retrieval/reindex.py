"""Re-embedding a collection with another model into a new index generation.

The new generation is built beside the active one (queries keep using the old one), in passes over the
documents whose chunks it lacks or holds stale; ingests meanwhile write the active generation and the
next pass catches up with them. The switch is one transaction under the collection's row lock, taken
only once a pass finds nothing left to do; a crashed re-index resumes its 'building' generation.
"""

from __future__ import annotations

import logging
from typing import Any

from switchyard.context import JobContext
from switchyard.retrieval import store
from switchyard.retrieval.embedding import embed_with_cache, get_embedder
from switchyard.retrieval.ingest import chunk_settings, prepare
from switchyard.retrieval.parsing import from_document
from switchyard.retrieval.schemas import DocumentIn

log = logging.getLogger("switchyard.retrieval")

PASS_DOCUMENTS = 64
MAX_IDLE_PASSES = 20


def reindex_collection(collection: str, model: str, *, tenant: str = "default", ctx: JobContext | None = None,
                       chunk_tokens: int | None = None, chunk_overlap: int | None = None) -> dict[str, Any]:
    """Re-embed ``collection`` with ``model``; returns ``{"generation", "documents", "chunks_embedded"}``."""
    ctx = ctx or JobContext.detached()
    coll = store.require_collection(tenant, collection)
    embedder = get_embedder(model)
    if embedder.name == coll.model:
        return {"generation": coll.generation_id, "documents": 0, "chunks_embedded": 0}
    chunking = chunk_settings(embedder, chunk_tokens, chunk_overlap, coll.chunking.get("chunking") != "none")
    generation = store.create_generation(coll, embedder.name, embedder.dimension, chunking)
    target = store.Collection(coll.id, coll.tenant, coll.name, generation, embedder.name, embedder.dimension,
                              chunking)
    documents = embedded = idle = 0
    while True:
        while batch := store.stale_documents(coll, generation, PASS_DOCUMENTS):
            ctx.raise_if_stopped()
            prepared = [prepare(from_document(DocumentIn(id=r["id"], text=r["text"], metadata=r["metadata"])),
                                chunking, embedder) for r in batch]
            needed = {c.text_hash: c.embed_text for d in prepared for c in d.chunks}
            vectors, computed = embed_with_cache(embedder, needed)
            written = sum(store.replace_in_generation(target, generation, doc, vectors) for doc in prepared)
            # A batch in which every document changed under us is normal once; for ever, a bug.
            idle = 0 if written else idle + 1
            if idle > MAX_IDLE_PASSES:
                raise RuntimeError(f"re-index of {collection!r} makes no progress: documents keep changing")
            documents += written
            embedded += computed
            ctx.progress(documents, None, chunks_embedded=embedded, generation=generation)
        if store.switch_generation(coll, generation, lambda: not store.stale_documents(coll, generation, 1)):
            break
    log.info("collection %s/%s now on generation %s (%s)", tenant, collection, generation, embedder.name)
    return {"generation": generation, "documents": documents, "chunks_embedded": embedded}
