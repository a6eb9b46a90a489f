-- LLM cache (issue 13): the semantic layer's entries, prompt embeddings in pgvector.
--
-- A hit needs the same namespace (tenant/purpose[/collection]) and the same llm_key (hash of the model
-- string with the call's parameters, tools included), a cosine distance under the threshold, and the
-- same guard signature (numbers, negation, named entities) as the stored prompt.
-- `embedding` has no fixed dimension (the embedder is configurable); the HNSW index is a partial
-- expression index for the default embedder's 384 dimensions, the form queries use:
--   (embedding::vector(384)) <=> $1 ... WHERE vector_dims(embedding) = 384
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE llm_cache_semantic (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace       text NOT NULL,
    model           text NOT NULL,
    llm_key         text NOT NULL,
    prompt_key      text NOT NULL,
    prompt          text NOT NULL,
    guard           jsonb NOT NULL DEFAULT '{}',
    embedding_model text NOT NULL,
    embedding       vector NOT NULL,
    value           bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    UNIQUE (namespace, llm_key, prompt_key)
);

CREATE INDEX llm_cache_semantic_scope ON llm_cache_semantic (namespace, llm_key);
CREATE INDEX llm_cache_semantic_model ON llm_cache_semantic (model);
CREATE INDEX llm_cache_semantic_expiry ON llm_cache_semantic (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX llm_cache_semantic_hnsw ON llm_cache_semantic
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE vector_dims(embedding) = 384;
