"""Collections, generations and documents in Postgres: the only code that writes the retrieval tables.

Every document is written in one transaction (stale chunks deleted, kept chunks moved, new chunks loaded
with binary ``COPY``), under a per-document advisory lock, so a crash never leaves half a document
visible and two writers of one document end with exactly one copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql as pgsql
from psycopg.types.json import Jsonb

from switchyard.db import connection
from switchyard.errors import NotFoundError, SwitchyardError
from switchyard.retrieval import sql
from switchyard.retrieval.filters import compile_filter


class CollectionNotFoundError(NotFoundError):
    """No collection of that name exists for the tenant."""


CollectionNotFound = CollectionNotFoundError  # the earlier name, still used by callers


class GenerationChanged(SwitchyardError):
    """The collection switched to another index generation while a batch was being prepared."""


@dataclass(frozen=True)
class Collection:
    id: int
    tenant: str
    name: str
    generation_id: int
    model: str
    dimension: int
    chunking: dict[str, Any]


@dataclass
class PreparedChunk:
    chunk_hash: str
    text_hash: bytes
    text: str
    embed_text: str
    position: int
    metadata: dict[str, Any]


@dataclass
class PreparedDocument:
    id: str
    source: str
    text: str
    metadata: dict[str, Any]
    content_hash: str
    chunks: list[PreparedChunk] = field(default_factory=list)


@dataclass
class WriteOutcome:
    inserted: int = 0
    kept: int = 0
    deleted: int = 0
    unchanged: bool = False


VectorSource = Callable[[list[PreparedChunk]], dict[bytes, np.ndarray]]


# --- collections -----------------------------------------------------------------------------------

def get_collection(tenant: str, name: str) -> Collection | None:
    with connection() as conn:
        row = conn.execute(sql.COLLECTION_GET, (tenant, name)).fetchone()
    return Collection(**row) if row else None


def require_collection(tenant: str, name: str) -> Collection:
    found = get_collection(tenant, name)
    if found is None:
        raise CollectionNotFound(f"no collection {name!r} for tenant {tenant!r}")
    return found


def create_collection(tenant: str, name: str, model: str, dimension: int, chunking: dict) -> Collection:
    """The collection, created with its first (active) generation unless it exists already."""
    with connection() as conn, conn.transaction():
        row = conn.execute(sql.COLLECTION_INSERT, (tenant, name)).fetchone()
        if row is not None:
            gen = conn.execute(sql.GENERATION_INSERT,
                               (row["id"], model, dimension, Jsonb(chunking), "active")).fetchone()["id"]
            conn.execute(sql.COLLECTION_ACTIVATE, (gen, row["id"]))
            conn.execute(sql.GENERATION_ACTIVATED, (gen,))
            create_hnsw_index(conn, gen, dimension)
    return require_collection(tenant, name)


def create_generation(collection: Collection, model: str, dimension: int, chunking: dict) -> int:
    """A new generation in 'building' (or the one a crashed re-index left) for ``model``."""
    with connection() as conn, conn.transaction():
        row = conn.execute(sql.GENERATION_BUILDING, (collection.id, model)).fetchone()
        if row is not None:
            return int(row["id"])
        gen = conn.execute(sql.GENERATION_INSERT,
                           (collection.id, model, dimension, Jsonb(chunking), "building")).fetchone()["id"]
        create_hnsw_index(conn, gen, dimension)
    return int(gen)


def hnsw_index_name(generation_id: int) -> str:
    return f"chunks_hnsw_g{generation_id}"


def create_hnsw_index(conn: psycopg.Connection, generation_id: int, dimension: int) -> None:
    conn.execute(sql.HNSW_INDEX_CREATE.format(name=pgsql.Identifier(hnsw_index_name(generation_id)),
                                              dim=pgsql.Literal(dimension), gen=pgsql.Literal(generation_id)))


def switch_generation(collection: Collection, generation_id: int, is_complete: Callable[[], bool]) -> bool:
    """Make ``generation_id`` the active one, atomically, if ``is_complete()`` under the collection lock.

    Ingests hold the collection row FOR SHARE while they write, so none is half-way through the old
    generation when the switch commits. Returns False (nothing changed) if documents are still stale.
    """
    with connection() as conn:
        with conn.transaction():
            old = conn.execute(sql.COLLECTION_LOCK_UPDATE, (collection.id,)).fetchone()["active_generation"]
            if not is_complete():
                return False
            conn.execute(sql.COLLECTION_ACTIVATE, (generation_id, collection.id))
            conn.execute(sql.GENERATION_ACTIVATED, (generation_id,))
            conn.execute(sql.GENERATION_RETIRED, (old,))
        conn.execute(sql.GENERATION_CHUNKS_DROP, (old,))
        conn.execute(sql.HNSW_INDEX_DROP.format(name=pgsql.Identifier(hnsw_index_name(old))))
    return True


# --- documents -------------------------------------------------------------------------------------

def document_hashes(collection: Collection, ids: Sequence[str]) -> dict[str, str]:
    with connection() as conn:
        rows = conn.execute(sql.DOC_HASHES, (collection.id, list(ids))).fetchall()
    return {r["id"]: r["content_hash"] for r in rows}


def chunk_hashes(generation_id: int, ids: Sequence[str]) -> dict[str, set[str]]:
    with connection() as conn:
        rows = conn.execute(sql.CHUNK_HASHES_OF_DOCS, (generation_id, list(ids))).fetchall()
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["document_id"], set()).add(r["chunk_hash"])
    return out


def write_document(collection: Collection, doc: PreparedDocument, vectors: VectorSource) -> WriteOutcome:
    """Make the stored document equal ``doc`` in one transaction; unchanged chunks keep their vectors.

    ``vectors(chunks)`` returns the vectors (by text hash) of chunks the store does not hold yet.
    """
    with connection() as conn, conn.transaction():
        active = conn.execute(sql.COLLECTION_LOCK_SHARE, (collection.id,)).fetchone()["active_generation"]
        if active != collection.generation_id:
            raise GenerationChanged(f"collection {collection.name!r} moved to generation {active}")
        conn.execute(sql.DOC_LOCK, (collection.id, doc.id))
        row = conn.execute(sql.DOC_HASH, (collection.id, doc.id)).fetchone()
        if row is not None and row["content_hash"] == doc.content_hash:
            return WriteOutcome(kept=len(doc.chunks), unchanged=True)
        gen = collection.generation_id
        existing = {r["chunk_hash"] for r in conn.execute(sql.CHUNK_HASHES, (gen, doc.id))}
        new_hashes = [c.chunk_hash for c in doc.chunks]
        deleted = 0
        if existing - set(new_hashes):
            deleted = conn.execute(sql.CHUNKS_DELETE_STALE, (gen, doc.id, new_hashes)).rowcount
        conn.execute(sql.DOC_UPSERT, (collection.id, doc.id, doc.source, doc.content_hash, doc.text,
                                      Jsonb(doc.metadata), len(doc.chunks)))
        kept = [c for c in doc.chunks if c.chunk_hash in existing]
        if kept:
            conn.execute(sql.CHUNKS_UPDATE_KEPT, (
                doc.content_hash, [c.chunk_hash for c in kept], [c.position for c in kept],
                [Jsonb(c.metadata) for c in kept], gen, doc.id))
        fresh = [c for c in doc.chunks if c.chunk_hash not in existing]
        if fresh:
            copy_chunks(conn, collection, gen, doc, fresh, vectors(fresh))
    return WriteOutcome(inserted=len(fresh), kept=len(kept), deleted=deleted)


def copy_chunks(conn: psycopg.Connection, collection: Collection, generation_id: int, doc: PreparedDocument,
                chunks: list[PreparedChunk], vectors: dict[bytes, np.ndarray]) -> None:
    """Binary ``COPY`` of new chunks, vectors in pgvector's binary format."""
    with conn.cursor() as cur, cur.copy(sql.CHUNKS_COPY) as copy:
        copy.set_types(sql.CHUNKS_COPY_TYPES)
        for c in chunks:
            copy.write_row((generation_id, collection.id, doc.id, c.chunk_hash, doc.content_hash, c.position,
                            c.text, Jsonb(c.metadata), vectors[c.text_hash]))


def replace_in_generation(collection: Collection, generation_id: int, doc: PreparedDocument,
                          vectors: dict[bytes, np.ndarray]) -> bool:
    """Re-index: write a document's chunks into a building generation (replacing what it held).
    False if the document was deleted or edited meanwhile (the next pass takes the current version)."""
    with connection() as conn, conn.transaction():
        conn.execute(sql.DOC_LOCK, (collection.id, doc.id))
        row = conn.execute(sql.DOC_HASH, (collection.id, doc.id)).fetchone()
        if row is None or row["content_hash"] != doc.content_hash:
            return False
        conn.execute(sql.GENERATION_DOC_REPLACE, (generation_id, doc.id))
        copy_chunks(conn, collection, generation_id, doc, doc.chunks, vectors)
    return True


def stale_documents(collection: Collection, generation_id: int, limit: int) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(sql.DOCS_STALE_IN_GENERATION, (collection.id, generation_id, limit)).fetchall()


def get_documents(collection: Collection, ids: Sequence[str]) -> list[dict[str, Any]]:
    with connection() as conn:
        return conn.execute(sql.DOC_GET_MANY, (collection.id, list(ids))).fetchall()


def delete_documents(collection: Collection, *, ids: Sequence[str] = (), sources: Sequence[str] = (),
                     filter: dict[str, Any] | None = None) -> dict[str, Any]:
    """Delete documents (and, by cascade, their chunks in every generation) matching any selector."""
    where: list[pgsql.Composable] = []
    params: list[Any] = [collection.id]
    if ids:
        where.append(pgsql.SQL("id = ANY(%s)"))
        params.append(list(ids))
    if sources:
        where.append(pgsql.SQL("source = ANY(%s)"))
        params.append(list(sources))
    if filter:
        where.append(pgsql.SQL("metadata @@ %s::jsonpath"))
        params.append(compile_filter(filter))
    if not where:
        raise ValueError("delete needs ids, sources or a filter")
    with connection() as conn:
        rows = conn.execute(sql.DOCS_DELETE.format(where=pgsql.SQL(" OR ").join(where)), params).fetchall()
    return {"documents": len(rows), "chunks_deleted": sum(r["chunk_count"] for r in rows),
            "ids": sorted(r["id"] for r in rows)}


def stats(collection: Collection) -> dict[str, int]:
    with connection() as conn:
        return dict(conn.execute(sql.COLLECTION_STATS, {"c": collection.id, "g": collection.generation_id})
                    .fetchone())


def content_hash(text: str, metadata: dict[str, Any], version: int) -> str:
    """A document version: its text, metadata and the chunker's version. Not the generation's chunk
    settings: those are fixed per generation, and a re-index must recognise the same document."""
    import hashlib

    payload = json.dumps({"text": text, "metadata": metadata, "chunker": version}, sort_keys=True,
                         default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()
