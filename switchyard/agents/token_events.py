"""The run's LangChain callback handler: tokens, LLM and tool lifecycle as events, token usage summed
per model (LangChain's ``UsageMetadataCallbackHandler``), estimated cost, and time to first token.

Tokens are published here, in the model's own thread, rather than from LangGraph's ``messages`` stream:
that stream hands each chunk to the thread iterating the graph through a queue, and the thread switch
(the GIL's 5 ms switch interval) was most of a token's delivery latency. The data is the same — the
node, step and namespace come from the metadata LangGraph puts on every model call, and model calls
tagged ``nostream`` (graders, routers) are skipped exactly as LangGraph skips them. A stop request is
checked on every token, so a cancel lands mid-generation instead of at the end of the node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import add_usage
from langchain_core.outputs import ChatGeneration, LLMResult

from switchyard.cache.streaming import cached_hit, token_pieces

Emit = Callable[[str, dict[str, Any]], Any]


def _clip(value: Any, limit: int = 2000) -> Any:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class RunCallbackHandler(UsageMetadataCallbackHandler):
    """Collects what a run's ``usage`` reports; ``emit`` publishes lifecycle events (``log`` type)."""

    raise_error = True  # let JobCancelled from ``check_stop`` propagate out of the model call

    def __init__(self, emit: Emit | None = None, *, prices: Mapping[str, Mapping[str, float]] | None = None,
                 check_stop: Callable[[], None] | None = None, started: float | None = None,
                 publish_tokens: bool = False):
        super().__init__()
        self.publish_tokens = publish_tokens
        self.tokens = 0
        self._calls: dict[UUID, dict[str, Any]] = {}  # run_id -> token event fields, or None if silent
        self._streamed: set[UUID] = set()
        self._emit = emit or (lambda _type, _data: None)
        self._check_stop = check_stop or (lambda: None)
        self.prices = dict(prices or {})
        self.started = started if started is not None else time.monotonic()
        self.first_token_at: float | None = None
        self.llm_calls = 0
        self.tool_calls = 0
        self.tool_errors = 0
        self.cache = {"hits": 0, "tokens_saved": 0}  # LLM cache hits of this run (switchyard.cache)
        self._models: dict[UUID, str] = {}
        self._token_lock = threading.Lock()

    # --- LLM -------------------------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list, *, run_id: UUID,
                            tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        metadata = metadata or {}
        model = metadata.get("ls_model_name") or (serialized or {}).get("name") or "unknown"
        self._models[run_id] = model
        if "nostream" not in (tags or []):
            # The subgraph path, as LangGraph's own stream namespaces it: the task's own part dropped.
            ns = metadata.get("langgraph_checkpoint_ns") or ""
            self._calls[run_id] = {"node": metadata.get("langgraph_node"), "step": metadata.get("langgraph_step"),
                                   "ns": ns.split("|")[:-1] if ns else []}
        self.llm_calls += 1
        self._emit("log", {"event": "llm_start", "model": model, "run_id": str(run_id),
                           "node": (metadata or {}).get("langgraph_node")})

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.on_chat_model_start(serialized, [], run_id=run_id, metadata=metadata, tags=kwargs.get("tags"))

    def on_llm_new_token(self, token: Any, *, run_id: UUID, chunk: Any = None, **kwargs: Any) -> None:
        where = self._calls.get(run_id)
        if where is not None and isinstance(token, str) and token:
            if self.first_token_at is None:
                with self._token_lock:
                    if self.first_token_at is None:
                        self.first_token_at = time.monotonic()
            self._streamed.add(run_id)
            if self.publish_tokens:
                message = getattr(chunk, "message", None)
                self.tokens += 1
                self._emit("token", {"content": token, "id": getattr(message, "id", None), "node": where["node"],
                                     "step": where["step"], "ns": where["ns"]})
        self._check_stop()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = generation.message if isinstance(generation, ChatGeneration) else None
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        model = ((message.response_metadata or {}).get("model_name") if message else None) \
            or self._models.pop(run_id, "unknown")
        if usage:
            with self._lock:
                previous = self.usage_metadata.get(model)
                self.usage_metadata[model] = add_usage(previous, usage) if previous else usage
        where = self._calls.pop(run_id, None)
        unstreamed = where is not None and run_id not in self._streamed and message is not None
        hit = cached_hit(message)
        if hit is not None:  # served by the LLM cache: counted, and streamed as cached pieces
            self.cache["hits"] += 1
            self.cache["tokens_saved"] += int((hit.get("saved") or {}).get("total_tokens", 0))
        if unstreamed and hit is not None and isinstance(message.content, str) and message.content:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            for piece in token_pieces(message.content) if self.publish_tokens else []:
                self.tokens += 1
                self._emit("token", {"content": piece, "id": message.id, "node": where["node"],
                                     "step": where["step"], "ns": where["ns"], "cached": True})
        elif unstreamed and isinstance(message.content, str) and message.content:
            # A model that does not stream: its whole answer is one token.
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            if self.publish_tokens:
                self.tokens += 1
                self._emit("token", {"content": message.content, "id": message.id, "node": where["node"],
                                     "step": where["step"], "ns": where["ns"]})
        self._streamed.discard(run_id)
        self._emit("log", {"event": "llm_end", "model": model, "run_id": str(run_id), "usage": usage})

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._emit("log", {"event": "llm_error", "run_id": str(run_id), "error": _clip(error)})

    # --- tools -----------------------------------------------------------------------------------------
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.tool_calls += 1
        self._emit("log", {"event": "tool_start", "tool": (serialized or {}).get("name"), "run_id": str(run_id),
                           "input": _clip(kwargs.get("inputs") or input_str)})

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        content = getattr(output, "content", output)
        self._emit("log", {"event": "tool_end", "tool": kwargs.get("name"), "run_id": str(run_id),
                           "output": _clip(content)})

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.tool_errors += 1
        self._emit("log", {"event": "tool_error", "tool": kwargs.get("name"), "run_id": str(run_id),
                           "error": _clip(error)})

    # --- summary ---------------------------------------------------------------------------------------
    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return round((self.first_token_at - self.started) * 1000, 3)

    def cost_usd(self) -> float:
        total = 0.0
        for model, usage in self.usage_metadata.items():
            price = self.prices.get(model) or {}
            total += usage.get("input_tokens", 0) * price.get("input", 0.0) / 1e6
            total += usage.get("output_tokens", 0) * price.get("output", 0.0) / 1e6
        return round(total, 8)

    def summary(self) -> dict[str, Any]:
        models = {m: dict(u) for m, u in self.usage_metadata.items()}
        return {
            "models": models,
            "input_tokens": sum(u.get("input_tokens", 0) for u in models.values()),
            "output_tokens": sum(u.get("output_tokens", 0) for u in models.values()),
            "total_tokens": sum(u.get("total_tokens", 0) for u in models.values()),
            "cost_usd": self.cost_usd(),
            "ttft_ms": self.ttft_ms,
            "llm_calls": self.llm_calls,
            "tool_calls": self.tool_calls,
            "tool_errors": self.tool_errors,
            "cache": dict(self.cache),
        }
