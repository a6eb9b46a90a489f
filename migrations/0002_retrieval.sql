-- Retrieval (issue 3): collections of documents, chunked and embedded into pgvector.
--
-- A collection belongs to one tenant and is searched through its *active index generation*: the
-- embedding model, its dimension and the chunking settings. Re-embedding a collection with another
-- model builds a new generation beside the old one and switches `active_generation` in one UPDATE.
--
-- `chunks.embedding` has no fixed dimension (generations differ), so the HNSW (cosine) index is a
-- partial expression index per generation, created with it by switchyard.retrieval.store:
--   CREATE INDEX chunks_hnsw_g<id> ON chunks USING hnsw ((embedding::vector(<dim>)) vector_cosine_ops)
--   WHERE generation_id = <id>
-- which also gives every collection its own HNSW graph: a search never walks other tenants' vectors.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant            text NOT NULL,
    name              text NOT NULL,
    active_generation bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name)
);

CREATE TABLE index_generations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    model         text NOT NULL,
    dimension     integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    chunking      jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'building' CHECK (status IN ('building', 'active', 'retired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz
);

ALTER TABLE collections
    ADD CONSTRAINT collections_active_generation_fkey
    FOREIGN KEY (active_generation) REFERENCES index_generations (id) DEFERRABLE INITIALLY DEFERRED;

-- One row per source document. `content_hash` covers the text, the metadata and the chunker's version
-- (not a generation's chunk settings, which are fixed per generation): an unchanged document is
-- recognised by it alone and costs nothing on re-ingest. The text is kept so a new generation can
-- re-chunk with its own model's tokenizer.
CREATE TABLE documents (
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    id            text NOT NULL,
    source        text,
    content_hash  text NOT NULL,
    text          text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    chunk_count   integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, id)
);

CREATE INDEX documents_source ON documents (collection_id, source);

-- Chunks of a document in one generation. `chunk_hash` identifies the embedded input (plus its
-- occurrence within the document), so an edited document keeps its unchanged chunks and their vectors.
-- `metadata` is the document's metadata merged with the chunk's source, heading path and position, so
-- filters run on this table alone (an HNSW scan cannot be ordered through a join).
CREATE TABLE chunks (
    generation_id bigint NOT NULL REFERENCES index_generations (id) ON DELETE CASCADE,
    collection_id bigint NOT NULL,
    document_id   text NOT NULL,
    chunk_hash    text NOT NULL,
    doc_hash      text NOT NULL,
    position      integer NOT NULL,
    text          text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    embedding     vector NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
    PRIMARY KEY (generation_id, document_id, chunk_hash),
    FOREIGN KEY (collection_id, document_id) REFERENCES documents (collection_id, id) ON DELETE CASCADE
);

CREATE INDEX chunks_document ON chunks (collection_id, document_id);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_metadata ON chunks USING gin (metadata jsonb_path_ops);

-- Vectors by (model, hash of the embedded text): identical text is never embedded twice, across
-- documents, collections, re-ingests and generations. Holds no text.
CREATE TABLE embedding_cache (
    model      text NOT NULL,
    text_hash  bytea NOT NULL,
    embedding  vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, text_hash)
);
