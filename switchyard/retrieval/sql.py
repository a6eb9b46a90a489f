"""Every SQL statement of the retrieval package, named (the tables are in migrations/0002_retrieval.sql).

Statements that name a generation's HNSW index are ``psycopg.sql`` templates: the generation id and the
vector dimension are inlined as literals, because the planner only uses a partial expression index when
the query repeats its predicate and expression with constants.
"""

from __future__ import annotations

from psycopg import sql

# --- collections and generations --------------------------------------------------------------------

COLLECTION_GET = """
SELECT c.id, c.tenant, c.name, c.active_generation AS generation_id, g.model, g.dimension, g.chunking
FROM collections c JOIN index_generations g ON g.id = c.active_generation
WHERE c.tenant = %s AND c.name = %s
"""

COLLECTION_INSERT = """
INSERT INTO collections (tenant, name) VALUES (%s, %s)
ON CONFLICT (tenant, name) DO NOTHING
RETURNING id
"""

GENERATION_INSERT = """
INSERT INTO index_generations (collection_id, model, dimension, chunking, status)
VALUES (%s, %s, %s, %s, %s)
RETURNING id
"""

GENERATION_GET = "SELECT id, collection_id, model, dimension, chunking, status FROM index_generations WHERE id = %s"

GENERATION_BUILDING = """
SELECT id, collection_id, model, dimension, chunking, status FROM index_generations
WHERE collection_id = %s AND model = %s AND status = 'building'
ORDER BY id DESC LIMIT 1
"""

COLLECTION_ACTIVATE = "UPDATE collections SET active_generation = %s WHERE id = %s"
GENERATION_ACTIVATED = "UPDATE index_generations SET status = 'active', activated_at = now() WHERE id = %s"
GENERATION_RETIRED = "UPDATE index_generations SET status = 'retired' WHERE id = %s"
# The old generation's vectors go once the switch committed (queries in flight finish on their snapshot).
GENERATION_CHUNKS_DROP = "DELETE FROM chunks WHERE generation_id = %s"

# Ingests take the collection row FOR SHARE: they run side by side, but a generation switch (FOR UPDATE)
# waits for them and they for it, so no document is written into a generation that is being retired.
COLLECTION_LOCK_SHARE = "SELECT active_generation FROM collections WHERE id = %s FOR SHARE"
COLLECTION_LOCK_UPDATE = "SELECT active_generation FROM collections WHERE id = %s FOR UPDATE"

HNSW_INDEX_CREATE = sql.SQL(
    "CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw ((embedding::vector({dim})) vector_cosine_ops)"
    " WHERE generation_id = {gen}"
)
HNSW_INDEX_DROP = sql.SQL("DROP INDEX IF EXISTS {name}")

# --- documents ----------------------------------------------------------------------------------------

DOC_HASHES = "SELECT id, content_hash FROM documents WHERE collection_id = %s AND id = ANY(%s)"
CHUNK_HASHES_OF_DOCS = "SELECT document_id, chunk_hash FROM chunks WHERE generation_id = %s AND document_id = ANY(%s)"

# Serialises writers of one document (two ingests of the same document, or a redelivered job beside
# its first delivery): the loser then sees the winner's content hash and has nothing to do.
DOC_LOCK = "SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))"
DOC_HASH = "SELECT content_hash FROM documents WHERE collection_id = %s AND id = %s"
CHUNK_HASHES = "SELECT chunk_hash FROM chunks WHERE generation_id = %s AND document_id = %s"

DOC_UPSERT = """
INSERT INTO documents (collection_id, id, source, content_hash, text, metadata, chunk_count)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (collection_id, id) DO UPDATE SET
    source = EXCLUDED.source, content_hash = EXCLUDED.content_hash, text = EXCLUDED.text,
    metadata = EXCLUDED.metadata, chunk_count = EXCLUDED.chunk_count, updated_at = now()
"""

CHUNKS_DELETE_STALE = """
DELETE FROM chunks WHERE generation_id = %s AND document_id = %s AND NOT (chunk_hash = ANY(%s))
"""

# Chunks whose text is unchanged keep their vector; only their position and metadata move.
CHUNKS_UPDATE_KEPT = """
UPDATE chunks c SET position = u.position, metadata = u.metadata, doc_hash = %s
FROM unnest(%s::text[], %s::int[], %s::jsonb[]) AS u (chunk_hash, position, metadata)
WHERE c.generation_id = %s AND c.document_id = %s AND c.chunk_hash = u.chunk_hash
"""

CHUNKS_COPY = """
COPY chunks (generation_id, collection_id, document_id, chunk_hash, doc_hash, position, text, metadata,
             embedding)
FROM STDIN (FORMAT BINARY)
"""
CHUNKS_COPY_TYPES = ["int8", "int8", "text", "text", "text", "int4", "text", "jsonb", "vector"]

DOCS_DELETE = sql.SQL("""
DELETE FROM documents WHERE collection_id = %s AND ({where})
RETURNING id, chunk_count
""")

DOC_GET_MANY = """
SELECT id, text, metadata FROM documents WHERE collection_id = %s AND id = ANY(%s)
"""

# Documents whose chunks in a generation are missing or stale (re-index passes).
DOCS_STALE_IN_GENERATION = """
SELECT d.id, d.text, d.metadata, d.source, d.content_hash FROM documents d
WHERE d.collection_id = %s AND d.chunk_count > 0 AND NOT EXISTS (
    SELECT 1 FROM chunks c WHERE c.generation_id = %s AND c.document_id = d.id AND c.doc_hash = d.content_hash)
ORDER BY d.id
LIMIT %s
"""

GENERATION_DOC_REPLACE = "DELETE FROM chunks WHERE generation_id = %s AND document_id = %s"

COLLECTION_STATS = """
SELECT (SELECT count(*) FROM documents WHERE collection_id = %(c)s) AS documents,
       (SELECT count(*) FROM chunks WHERE generation_id = %(g)s) AS chunks
"""

# --- embedding cache --------------------------------------------------------------------------------

CACHE_GET = "SELECT text_hash, embedding FROM embedding_cache WHERE model = %s AND text_hash = ANY(%s)"
CACHE_PUT = """
INSERT INTO embedding_cache (model, text_hash, embedding)
SELECT %s, h, e FROM unnest(%s::bytea[], %s::vector[]) AS t (h, e)
ON CONFLICT DO NOTHING
"""

# --- a split ingest's parts (switchyard.retrieval.parts): reads of the ledger, which jobs.py writes ---------

PART_KEYS = "SELECT idempotency_key FROM jobs WHERE producer = %s AND idempotency_key = ANY(%s) LIMIT 1"
# A part another worker may still start: queued, or running under a lease that has expired.
PARTS_STATE = """
SELECT id, status, (status = 'queued' OR (status = 'running' AND lease_expires_at < now())) AS claimable
FROM jobs WHERE id = ANY(%s)
"""

# --- search -------------------------------------------------------------------------------------------

# Per-search settings, local to the search's transaction and sent in the same pipeline as the query (one
# round trip): HNSW breadth; filtered HNSW scans continue until they have k rows (pgvector 0.8 iterative
# scans, relaxed order re-sorted by the outer query); and, under a selective filter, no index scan at all,
# so the few matching rows are found by the GIN bitmap scan and sorted exactly (recall 1).
SEARCH_SETTINGS = """
SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.max_scan_tuples', %s, true), set_config('enable_indexscan', %s, true)
"""

# How many rows the planner expects a filter to keep: planning only, nothing is scanned. Its estimates
# come from the column statistics of `metadata` (accurate for equality and ranges alike).
FILTER_ESTIMATE = sql.SQL(
    "EXPLAIN (FORMAT JSON) SELECT 1 FROM chunks WHERE generation_id = {gen} AND metadata @@ {filter}::jsonpath"
)

# An OR of the query's stemmed lexemes: natural-language questions match chunks that share any word,
# and ts_rank_cd ranks those sharing more of them higher (websearch_to_tsquery would AND them all).
_TSQUERY = "replace(strip(to_tsvector('english'::regconfig, %(text)s))::text, ''' ''', ''' | ''')::tsquery"

SEARCH_VECTOR = sql.SQL("""
WITH hits AS MATERIALIZED (
    SELECT document_id, chunk_hash, text, metadata,
           embedding::vector({dim}) <=> %(vector)s::vector({dim}) AS distance
    FROM chunks WHERE generation_id = {gen}{filter}
    ORDER BY distance LIMIT %(k)s
)
SELECT document_id, chunk_hash, text, metadata, 1 - distance AS score FROM hits ORDER BY distance + 0
""")

SEARCH_TEXT = sql.SQL("""
SELECT document_id, chunk_hash, text, metadata, ts_rank_cd(tsv, q.query) AS score
FROM chunks, (SELECT """ + _TSQUERY + """ AS query) q
WHERE generation_id = {gen} AND tsv @@ q.query{filter}
ORDER BY score DESC, document_id, chunk_hash LIMIT %(k)s
""")

# Reciprocal rank fusion of the two candidate lists, in one round trip.
SEARCH_HYBRID = sql.SQL("""
WITH v AS MATERIALIZED (
    SELECT document_id, chunk_hash, embedding::vector({dim}) <=> %(vector)s::vector({dim}) AS distance
    FROM chunks WHERE generation_id = {gen}{filter}
    ORDER BY distance LIMIT %(n)s
), vr AS (
    SELECT document_id, chunk_hash, row_number() OVER (ORDER BY distance) AS r FROM v
), t AS (
    SELECT document_id, chunk_hash, row_number() OVER (ORDER BY ts_rank_cd(tsv, q.query) DESC) AS r
    FROM chunks, (SELECT """ + _TSQUERY + """ AS query) q
    WHERE generation_id = {gen} AND tsv @@ q.query{filter}
    ORDER BY r LIMIT %(n)s
), fused AS (
    SELECT coalesce(vr.document_id, t.document_id) AS document_id,
           coalesce(vr.chunk_hash, t.chunk_hash) AS chunk_hash,
           coalesce(1.0 / (%(rrf_k)s + vr.r), 0) + coalesce(1.0 / (%(rrf_k)s + t.r), 0) AS score
    FROM vr FULL JOIN t ON vr.document_id = t.document_id AND vr.chunk_hash = t.chunk_hash
    ORDER BY score DESC, document_id, chunk_hash LIMIT %(k)s
)
SELECT c.document_id, c.chunk_hash, c.text, c.metadata, f.score::float8 AS score
FROM fused f JOIN chunks c
  ON c.generation_id = {gen} AND c.document_id = f.document_id AND c.chunk_hash = f.chunk_hash
ORDER BY f.score DESC, c.document_id, c.chunk_hash
""")

# Exact (sequential) nearest neighbours: the ground truth for recall in bench/retrieval.py.
SEARCH_EXACT = sql.SQL("""
SELECT document_id, chunk_hash FROM chunks WHERE generation_id = {gen}{filter}
ORDER BY embedding::vector({dim}) <=> %(vector)s::vector({dim}) LIMIT %(k)s
""")
