"""The index pool's settings: environment variables prefixed ``SWITCHYARD_`` (README "Indexing")."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class RetrievalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    # The model a new collection gets: the bundled all-MiniLM-L6-v2, a sentence-transformers model
    # path, or "openai:<model>" for an OpenAI-compatible /embeddings endpoint.
    embedding_model: str = DEFAULT_MODEL
    embedding_batch_size: int = 64
    # Index pool children load the default model as they start (in the background), not on their first job.
    preload_model: bool = True
    embedding_api_base: str | None = None
    embedding_api_key: SecretStr | None = None
    # Chunk budget and overlap, in the embedding model's own tokens.
    chunk_tokens: int = 200
    chunk_overlap: int = 32
    # Documents handled per step: one embedding pass, then one transaction per document.
    ingest_batch_chunks: int = 256
    # An ingest splits into parts (sub-jobs the whole pool runs at once) of at least this many characters
    # of text each, up to the pool's concurrency; smaller ones run in one piece.
    ingest_part_min_chars: int = 20_000
    # HNSW search breadth; filtered queries also scan iteratively until they have k rows.
    hnsw_ef_search: int = 100
    hnsw_max_scan_tuples: int = 20_000
    # A filter that keeps at most this many chunks is searched exactly (recall 1) instead of by HNSW,
    # whose iterative scan loses recall when few neighbours pass the filter.
    exact_filter_rows: int = 5_000
    # Candidates each side of a hybrid search feeds into reciprocal rank fusion, and its constant.
    hybrid_candidates: int = 50
    rrf_k: int = 60


@lru_cache(maxsize=1)
def get_retrieval_settings() -> RetrievalSettings:
    return RetrievalSettings()
