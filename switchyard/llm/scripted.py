"""A scripted chat model for tests and demos: LangChain's ``GenericFakeChatModel``, made replay-safe.

The upstream fake pops the next message from an iterator, so a process that restarts (a redelivered
run) would start the script over. This one picks the reply from the conversation instead: the first
rule whose ``when`` text occurs in the last message, else ``responses[n]`` where ``n`` is the number of
AI messages already in the prompt. The same prompt always gets the same reply, in any process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

Reply = str | dict[str, Any]


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


class ScriptedChatModel(GenericFakeChatModel):
    """Replies from a script: ``responses`` by turn, ``rules`` by content; usage counted in words."""

    messages: Iterator[AIMessage] = Field(default_factory=lambda: iter(()))
    responses: list[Reply] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)
    token_delay_s: float = 0.0
    model_name: str = "scripted"

    @classmethod
    def from_config(cls, options: dict[str, Any]) -> ScriptedChatModel:
        return cls(**options)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self  # the script already says which tools it calls

    def _pick(self, messages: list[BaseMessage]) -> Reply:
        last = _text(messages[-1]) if messages else ""
        for rule in self.rules:
            if rule.get("when", "") in last:
                return rule["reply"]
        if not self.responses:
            return "ok"
        turn = sum(isinstance(m, AIMessage) for m in messages)
        return self.responses[min(turn, len(self.responses) - 1)]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        reply = self._pick(messages)
        spec = {"content": reply} if isinstance(reply, str) else dict(reply)
        tool_calls = [{"id": c.get("id") or f"call_{uuid.uuid4().hex[:12]}", "name": c["name"],
                       "args": c.get("args", {})} for c in spec.get("tool_calls", [])]
        content = spec.get("content", "")
        words_in = sum(len(_text(m).split()) for m in messages)
        words_out = max(len(content.split()), 1)
        message = AIMessage(
            content=content, tool_calls=tool_calls, id=f"run-{uuid.uuid4()}",
            usage_metadata={"input_tokens": words_in, "output_tokens": words_out,
                            "total_tokens": words_in + words_out},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        # The upstream fake splits on whitespace (keeping it), so the pieces join back to the text.
        pieces = [p for p in _split(_text(message)) if p]
        for piece in pieces:
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            # BaseChatModel.stream reports each chunk to the callbacks (on_llm_new_token) itself.
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece, id=message.id))
        # Tool calls, usage and the model name travel on a closing chunk.
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", id=message.id, chunk_position="last",
            tool_call_chunks=[{"id": c["id"], "name": c["name"], "args": _json(c["args"]), "index": i,
                               "type": "tool_call_chunk"} for i, c in enumerate(message.tool_calls)],
            usage_metadata=message.usage_metadata, response_metadata=message.response_metadata,
        ))


def _split(text: str) -> list[str]:
    import re

    return re.split(r"(\s)", text)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
