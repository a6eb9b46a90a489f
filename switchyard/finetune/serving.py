"""Local inference with hot-swapped adapters: one resident base model per process, many adapters.

``AdapterServer`` loads a base model once and serves any number of adapters on it with peft's
``load_adapter`` / ``set_adapter``: switching adapters per request never reloads the base, and at most
``max_resident`` adapters stay loaded (least recently used ones are deleted). ``adapter=None`` runs the
base with adapters disabled (``disable_adapter``), which is bit-identical to the base alone.

``ChatLocalAdapter`` is the LangChain chat model over it (``invoke``, token streaming via ``_stream``),
so an agent graph can use a newly registered adapter by name on its next run::

    from switchyard.finetune.serving import ChatLocalAdapter
    llm = ChatLocalAdapter(adapter="ft:tiny-llama:capitals:1a2b3c4d5e6f")

Generation is serialised per base model (a lock): the agent pool's threads share one copy of the
weights instead of each loading its own.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from switchyard.finetune.config import get_finetune_settings


def _key(name: str) -> str:
    # peft adapter names become module-dict keys: no dots or colons allowed there.
    return "a" + hashlib.sha1(name.encode()).hexdigest()[:16]


class AdapterServer:
    """One base model in memory, adapters loaded on demand and swapped per request."""

    def __init__(self, base_path: str | Path, *, max_resident: int | None = None):
        self.base_path = str(base_path)
        self.max_resident = max_resident or get_finetune_settings().max_resident_adapters
        self.lock = threading.RLock()
        self.base_loads = 0
        self.adapter_loads = 0
        self._base: Any = None
        self._model: Any = None  # the PeftModel wrapping _base, once an adapter is loaded
        self._tokenizer: Any = None
        self._resident: OrderedDict[str, str] = OrderedDict()  # adapter name -> peft key

    # --- loading --------------------------------------------------------------------------------------
    def _ensure_base(self) -> None:
        if self._base is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM

        from switchyard.finetune.train import device, load_tokenizer

        dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
        self._base = AutoModelForCausalLM.from_pretrained(self.base_path, dtype=dtype).to(device()).eval()
        self._tokenizer = load_tokenizer(self.base_path)
        self.base_loads += 1

    def _activate(self, name: str | None, path: str | Path | None) -> Any:
        """The model to run: the peft model with ``name`` active, or the base for ``None``."""
        self._ensure_base()
        if name is None:
            return None
        if name in self._resident:
            self._resident.move_to_end(name)
        else:
            from peft import PeftModel

            if path is None:
                from switchyard.finetune import adapters

                path = adapters.local_dir(adapters.get_adapter(name))
            key = _key(name)
            if self._model is None:
                self._model = PeftModel.from_pretrained(self._base, str(path), adapter_name=key)
                self._model.eval()
            else:
                self._model.load_adapter(str(path), adapter_name=key)
            self._resident[name] = key
            self.adapter_loads += 1
            while len(self._resident) > self.max_resident:
                _evicted, old_key = self._resident.popitem(last=False)
                self._model.set_adapter(key)
                self._model.delete_adapter(old_key)
        self._model.set_adapter(self._resident[name])
        return self._model

    @property
    def resident(self) -> list[str]:
        return list(self._resident)

    @contextmanager
    def using(self, name: str | None, path: str | Path | None = None) -> Iterator[Any]:
        """Hold the lock with ``name`` active (or, for ``None``, the base with adapters disabled)."""
        with self.lock:
            model = self._activate(name, path)
            if model is not None:
                yield model
            elif self._model is None:
                yield self._base
            else:
                with self._model.disable_adapter():
                    yield self._model

    # --- inference ------------------------------------------------------------------------------------
    def logits(self, text: str, adapter: str | None = None, *, path: str | Path | None = None) -> Any:
        """Next-token logits over ``text`` (tests compare adapters and the frozen base with these)."""
        import torch

        def run(model: Any) -> Any:
            ids = self._tokenizer(text, return_tensors="pt").to(model.device)
            with torch.no_grad():
                return model(**ids).logits.float().cpu()

        with self.using(adapter, path) as model:
            return run(model)

    def _inputs(self, messages: list[dict[str, Any]]) -> Any:
        return self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                   return_dict=True)

    def _generate_kwargs(self, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": pad,
                  "eos_token_id": self._tokenizer.eos_token_id, "do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        return kwargs

    def generate(self, messages: list[dict[str, Any]], adapter: str | None = None, *, max_new_tokens: int = 64,
                 temperature: float = 0.0, path: str | Path | None = None) -> str:
        def run(model: Any) -> str:
            inputs = self._inputs(messages).to(model.device)
            out = model.generate(**inputs, **self._generate_kwargs(max_new_tokens, temperature))
            return self._tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

        with self.using(adapter, path) as model:
            return run(model)

    def stream(self, messages: list[dict[str, Any]], adapter: str | None = None, *, max_new_tokens: int = 64,
               temperature: float = 0.0, path: str | Path | None = None) -> Iterator[str]:
        """Text pieces as they are generated (transformers' ``TextIteratorStreamer``)."""
        from transformers import TextIteratorStreamer

        with self.using(adapter, path) as model:  # held until the stream ends
            inputs = self._inputs(messages).to(model.device)
            streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
            worker = threading.Thread(target=model.generate, daemon=True, kwargs={
                **inputs, **self._generate_kwargs(max_new_tokens, temperature), "streamer": streamer})
            worker.start()
            try:
                yield from streamer
            finally:
                worker.join()


_servers: dict[str, AdapterServer] = {}
_servers_lock = threading.Lock()


def server_for(base_path: str | Path) -> AdapterServer:
    """This process's server for a base model (created on first use, then resident)."""
    key = str(Path(base_path).resolve())
    with _servers_lock:
        if key not in _servers:
            _servers[key] = AdapterServer(key)
        return _servers[key]


def _role_dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = []
    for message in convert_to_openai_messages(messages):
        content = message.get("content") or ""
        if isinstance(content, list):  # content blocks: keep the text
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        out.append({"role": message["role"], "content": content})
    return out


def _cut(text: str, stop: list[str] | None) -> tuple[str, bool]:
    for word in stop or []:
        if word in text:
            return text[: text.index(word)], True
    return text, False


class ChatLocalAdapter(BaseChatModel):
    """A LangChain chat model answering with a registered adapter (or the bare base) on a resident base."""

    adapter: str | None = Field(default=None, description="registered adapter name; None = the base model")
    base_model: str | None = Field(default=None, description="base model (name or path) when adapter is None")
    max_new_tokens: int = 128
    temperature: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "switchyard-local-adapter"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "base_model": self.base_model, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature}

    def _server(self) -> tuple[AdapterServer, str | None]:
        if self.adapter is not None:
            from switchyard.finetune import adapters

            record = adapters.get_adapter(self.adapter)
            return server_for(record.base_path), str(adapters.local_dir(record))
        if self.base_model is None:
            raise ValueError("ChatLocalAdapter needs an adapter or a base_model")
        from switchyard.finetune.models import resolve_model

        return server_for(resolve_model(self.base_model)), None

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        server, path = self._server()
        text = server.generate(_role_dicts(messages), self.adapter, path=path,
                               max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
                               temperature=kwargs.get("temperature", self.temperature))
        text, _ = _cut(text, stop)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(
            content=text, response_metadata={"model_name": self.adapter or self.base_model}))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        server, path = self._server()
        seen = ""
        for piece in server.stream(_role_dicts(messages), self.adapter, path=path,
                                   max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
                                   temperature=kwargs.get("temperature", self.temperature)):
            if not piece:
                continue
            kept, stopped = _cut(seen + piece, stop)
            piece = kept[len(seen):]
            seen = kept
            if piece:
                # LangChain's stream()/invoke() report each yielded chunk to on_llm_new_token themselves.
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if stopped:
                break
        # A last (possibly only) chunk: an answer that is just EOS is still an answer.
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", response_metadata={"model_name": self.adapter or self.base_model}))
