"""The ingest pipeline: parse → chunk → hash → (cache | embed) → one transaction per document.

``ingest_documents`` is what ``switchyard.index.ingest`` runs, and works the same without Celery. Work
goes in steps of about ``SWITCHYARD_INGEST_BATCH_CHUNKS`` chunks: one embedding pass over the step's new
chunks (cache first), then each document's transaction; progress is reported and stop requests are
honoured between steps, so a redelivered job skips every document already written (content hash).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg

from switchyard.context import JobContext
from switchyard.retrieval import store
from switchyard.retrieval.chunking import CHUNKER_VERSION, Chunker
from switchyard.retrieval.config import get_retrieval_settings
from switchyard.retrieval.embedding import Embedder, embed_with_cache, get_embedder, text_hash
from switchyard.retrieval.parsing import ParsedDocument, ParseError, from_document, from_file
from switchyard.retrieval.schemas import DocumentIn, FailedDocument, FileIn, IngestResult
from switchyard.retrieval.store import Collection, GenerationChanged, PreparedChunk, PreparedDocument

log = logging.getLogger("switchyard.retrieval")

# LangChain's VectorStore contract stores each text as given (callers split first): one chunk each.
NO_CHUNKING = {"chunking": "none"}


class ModelMismatch(store.SwitchyardError, ValueError):
    """The message names another embedding model than the collection's."""


def ingest_documents(
    collection: str,
    documents: Sequence[DocumentIn | dict[str, Any]] = (),
    *,
    tenant: str = "default",
    ctx: JobContext | None = None,
    files: Sequence[FileIn | dict[str, Any]] = (),
    model: str | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    embedder: Embedder | None = None,
    chunking: bool = True,
) -> dict[str, Any]:
    """Chunk, embed and load documents into ``collection`` idempotently; returns the job result
    ``{"documents", "chunks_embedded", "chunks_unchanged", "chunks_deleted", "failed"}``."""
    ctx = ctx or JobContext.detached()
    coll = open_collection(tenant, collection, model=model, embedder=embedder,
                           chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, chunking=chunking)
    docs = [d if isinstance(d, DocumentIn) else DocumentIn.model_validate(d) for d in documents]
    file_specs = [f if isinstance(f, FileIn) else FileIn.model_validate(f) for f in files]
    result = IngestResult()
    parsed: list[ParsedDocument] = []
    for doc in docs:
        parsed.append(from_document(doc))
    for spec in file_specs:
        try:
            parsed.append(from_file(spec))
        except ParseError as exc:
            result.failed.append(FailedDocument(id=spec.document_id or "?", error=str(exc)))
    for _attempt in range(3):
        attempt = IngestResult(failed=list(result.failed))
        try:
            _ingest(coll, parsed, attempt, ctx, embedder)
            result = attempt
            break
        except GenerationChanged:
            log.info("collection %s switched generation mid-ingest; continuing on the new one", collection)
            coll = open_collection(tenant, collection, embedder=embedder, chunking=chunking)
    else:
        raise GenerationChanged(f"collection {collection!r} kept switching generations; try again")
    return result.model_dump()


def open_collection(tenant: str, name: str, *, model: str | None = None, embedder: Embedder | None = None,
                    chunk_tokens: int | None = None, chunk_overlap: int | None = None,
                    chunking: bool = True) -> Collection:
    """The collection, created on first use with ``model`` (or the default) and chunk settings."""
    existing = store.get_collection(tenant, name)
    wanted = embedder.name if embedder is not None else (get_embedder(model).name if model else None)
    if existing is not None:
        if wanted and wanted != existing.model:
            raise ModelMismatch(f"collection {name!r} uses {existing.model}, not {wanted}; send reindex=true "
                                "with the new model to re-embed it")
        return existing
    embedder = embedder or get_embedder(model)
    return store.create_collection(tenant, name, embedder.name, embedder.dimension,
                                   chunk_settings(embedder, chunk_tokens, chunk_overlap, chunking))


def chunk_settings(embedder: Embedder, chunk_tokens: int | None, chunk_overlap: int | None,
                   chunking: bool = True) -> dict[str, Any]:
    if not chunking:
        return dict(NO_CHUNKING)
    settings = get_retrieval_settings()
    budget = min(chunk_tokens or settings.chunk_tokens, embedder.max_tokens - 2)
    overlap = min(chunk_overlap if chunk_overlap is not None else settings.chunk_overlap, budget // 2)
    return Chunker(embedder.tokens, budget, overlap).settings


def prepare(doc: ParsedDocument, chunking: dict[str, Any], embedder: Embedder) -> PreparedDocument:
    """Chunks and hashes of one document (no I/O)."""
    if chunking.get("chunking") == "none":
        pieces = [(doc.text, doc.text, (), 0, len(doc.text))] if doc.text else []
    else:
        chunker = Chunker(embedder.tokens, chunking["budget"], chunking["overlap"])
        pieces = [(c.text, c.embed_text, c.heading_path, c.start, c.end)
                  for c in chunker.chunk(doc.text, doc.blocks)]
    chunks = []
    seen: dict[bytes, int] = {}
    for position, (text, embed_text, path, start, end) in enumerate(pieces):
        key = text_hash(embed_text)
        occurrence = seen[key] = seen.get(key, -1) + 1  # a repeated passage stays two chunks
        chunk_hash = hashlib.blake2b(key + occurrence.to_bytes(4, "big"), digest_size=16).hexdigest()
        if chunking.get("chunking") == "none":
            metadata = dict(doc.metadata)  # LangChain's contract: metadata comes back as it went in
        else:
            metadata = {**doc.metadata, "source": doc.source, "heading_path": list(path),
                        "position": position, "start": start, "end": end}
        chunks.append(PreparedChunk(chunk_hash, key, text, embed_text, position, metadata))
    return PreparedDocument(doc.id, doc.source, doc.text, doc.metadata,
                            store.content_hash(doc.text, doc.metadata, CHUNKER_VERSION), chunks)


def _steps(docs: Sequence[PreparedDocument], step_chunks: int) -> Iterable[list[PreparedDocument]]:
    step: list[PreparedDocument] = []
    size = 0
    for doc in docs:
        step.append(doc)
        size += max(len(doc.chunks), 1)
        if size >= step_chunks:
            yield step
            step, size = [], 0
    if step:
        yield step


def _ingest(coll: Collection, parsed: list[ParsedDocument], result: IngestResult, ctx: JobContext,
            embedder: Embedder | None) -> None:
    embedder = embedder or get_embedder(coll.model)
    prepared = []
    for doc in parsed:
        try:
            prepared.append(prepare(doc, coll.chunking, embedder))
        except Exception as exc:  # a document the chunker cannot handle fails alone, with the reason
            log.exception("document %s: cannot chunk", doc.id)
            result.failed.append(FailedDocument(id=doc.id, error=f"cannot chunk: {type(exc).__name__}: {exc}"))
    total_docs, total_chunks = len(prepared), sum(len(d.chunks) for d in prepared)
    done_docs = done_chunks = 0
    started = time.monotonic()
    ctx.progress(0, total_docs, chunks_done=0, chunks_total=total_chunks)
    for step in _steps(prepared, get_retrieval_settings().ingest_batch_chunks):
        ctx.raise_if_stopped()
        known = store.document_hashes(coll, [d.id for d in step])
        changed = [d for d in step if known.get(d.id) != d.content_hash]
        for d in step:
            if known.get(d.id) == d.content_hash:
                result.chunks_unchanged += len(d.chunks)
                result.documents += 1
        vectors: dict[bytes, np.ndarray] = {}
        if changed:
            held = store.chunk_hashes(coll.generation_id, [d.id for d in changed])
            needed = {c.text_hash: c.embed_text for d in changed for c in d.chunks
                      if c.chunk_hash not in held.get(d.id, ())}
            vectors, computed = embed_with_cache(embedder, needed)
            ctx.metrics(embeddings_computed=computed, embeddings_cached=len(needed) - computed)

        def vector_source(chunks: list[PreparedChunk], vectors: dict = vectors) -> dict[bytes, np.ndarray]:
            missing = {c.text_hash: c.embed_text for c in chunks if c.text_hash not in vectors}
            if missing:  # another writer removed chunks we expected to keep: embed them now
                vectors.update(embed_with_cache(embedder, missing)[0])
            return vectors

        for d in changed:
            try:
                outcome = store.write_document(coll, d, vector_source)
            except psycopg.DataError as exc:  # e.g. a NUL byte or NaN in metadata: this document only
                result.failed.append(FailedDocument(id=d.id, error=f"rejected by the database: {exc}"))
                continue
            result.documents += 1
            result.chunks_embedded += outcome.inserted
            result.chunks_unchanged += outcome.kept
            result.chunks_deleted += outcome.deleted
        done_docs += len(step)
        done_chunks += sum(len(d.chunks) for d in step)
        elapsed = time.monotonic() - started
        ctx.progress(done_docs, total_docs, chunks_done=done_chunks, chunks_total=total_chunks,
                     chunks_per_s=round(done_chunks / elapsed, 1) if elapsed else None)
