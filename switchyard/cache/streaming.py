"""A cache hit in a streamed run still streams: the cached text as ``token`` events, chunked, marked.

LangChain serves a hit without calling the model, so no ``on_llm_new_token`` fires; the run's
callback handler sees the whole answer at ``on_llm_end``. It asks ``cached_hit`` whether the answer
came from this cache and, if so, publishes ``token_pieces`` of it with ``"cached": true``, so a
subscriber sees the same stream shape as a live answer.
"""

from __future__ import annotations

import re
from typing import Any

from switchyard.cache.codec import MARKER

_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")


def cached_hit(message: Any) -> dict[str, Any] | None:
    """The cache marker of a message that was a cache hit, else ``None``."""
    return (getattr(message, "response_metadata", None) or {}).get(MARKER)


def token_pieces(text: str) -> list[str]:
    """The text in word-sized pieces (whitespace kept, so the pieces join back to the text)."""
    return _PIECE_RE.findall(text) or [text]
