"""Local inference: one resident base model per process, many adapters, concurrent requests batched.

``AdapterServer`` loads a base model once and answers every request of its process on it:

- **Dynamic batching.** Requests go into a queue; one scheduler thread takes the first, waits up to
  ``batch_wait_ms`` for more (``SWITCHYARD_SERVING_BATCH_WAIT_MS``, default 10), left-pads them into one
  batch of at most ``max_batch`` and runs one ``model.generate`` for all of them. Requests that arrive
  while a batch runs form the next one. The agent pool's threads thus share one copy of the weights and
  one forward pass per token, instead of queueing behind a lock.
- **Adapters per request.** A batch whose rows use different adapters (or the bare base) runs with
  peft's mixed-adapter batch inference (``generate(..., adapter_names=[...])``, ``"__base__"`` for the
  base); a batch on one adapter uses ``set_adapter``. Adapters load on demand; at most ``max_resident``
  stay loaded (least recently used ones are deleted, never one the running batch needs).
- **Per-request settings and streaming.** Max new tokens, temperature (0 = greedy), top-p and stop
  strings are per row; each request gets its own stream of text pieces, and stops on the chat
  template's end-of-turn token (``<|im_end|>`` for SmolLM2), on EOS, on a stop string or at its limit.

``ChatLocalAdapter`` is the LangChain chat model over it (``invoke``, token streaming via ``_stream``,
usage metadata), so an agent graph uses a base model or a newly registered adapter by name::

    from switchyard.finetune.serving import ChatLocalAdapter
    llm = ChatLocalAdapter(base_model="smollm2-135m-instruct")
    llm = ChatLocalAdapter(adapter="ft:smollm2-135m-instruct:handbook:1a2b3c4d5e6f")
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard.finetune.config import get_finetune_settings

_BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch
_END = object()  # end of a request's piece stream


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_SERVING_", extra="ignore")

    # How long the scheduler waits after a batch's first request for others to join it.
    batch_wait_ms: float = 10.0
    max_batch: int = 16


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    return ServingSettings()


def _key(name: str) -> str:
    # peft adapter names become module-dict keys: no dots or colons allowed there.
    return "a" + hashlib.sha1(name.encode()).hexdigest()[:16]


@dataclass
class GenerationRequest:
    """One request in flight: its settings, its output queue and what it has produced so far."""

    input_ids: list[int]
    adapter: str | None
    adapter_path: str | None
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of the decoded text already sent
    done: bool = False
    cancelled: bool = False
    finish_reason: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)

    def __iter__(self) -> Iterator[str]:
        """Text pieces as they are generated; raises what the batch raised."""
        try:
            while (item := self.out.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancelled = True  # a consumer that stops reading frees its row at the next token


def _held_back(text: str, stop: list[str]) -> int:
    """Characters at the end of ``text`` that may still become a stop string (not to be sent yet)."""
    longest = 0
    for word in stop:
        for n in range(min(len(word) - 1, len(text)), longest, -1):
            if text.endswith(word[:n]):
                longest = n
                break
    return longest


class _BatchProgress:
    """A ``StoppingCriteria`` that, after each generated token, hands every row its new text and says
    which rows are finished.

    It runs inside ``generate`` on the freshly sampled tokens (a streamer would not do: on a GPU
    transformers hands the streamer each token one step late, after the stop decision).
    """

    def __init__(self, requests: list[GenerationRequest], tokenizer: Any, end_ids: set[int]):
        self.requests = requests
        self.tokenizer = tokenizer
        self.end_ids = end_ids

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        for request, token in zip(self.requests, last, strict=True):
            if not request.done:
                self._advance(request, token)
        return torch.tensor([r.done for r in self.requests], dtype=torch.bool, device=input_ids.device)

    def _advance(self, request: GenerationRequest, token: int) -> None:
        if request.cancelled:
            self.finish(request, "cancelled")
            return
        if token in self.end_ids:
            self.finish(request, "stop")
            return
        request.tokens.append(token)
        text = self.tokenizer.decode(request.tokens, skip_special_tokens=True)
        hits = [text.find(word, max(0, request.emitted - len(word))) for word in request.stop]
        hits = [h for h in hits if h >= 0]
        if hits:
            self._send(request, text[: min(hits)])
            self.finish(request, "stop")
            return
        # A multi-byte character still incomplete waits for its other tokens; so does a possible stop string.
        held = 1 if text.endswith("\ufffd") else _held_back(text, request.stop)
        ready = text[: len(text) - held]
        self._send(request, ready)
        if len(request.tokens) >= request.max_new_tokens:
            self.finish(request, "length", text)

    @staticmethod
    def _send(request: GenerationRequest, text: str) -> None:
        if len(text) > request.emitted:
            request.out.put(text[request.emitted:])
            request.emitted = len(text)

    def finish(self, request: GenerationRequest, reason: str, text: str | None = None) -> None:
        if request.done:
            return
        if text is not None:
            self._send(request, text)
        request.done, request.finish_reason = True, reason
        request.out.put(_END)

    def flush(self) -> None:
        """After ``generate`` returns: rows it ended (its own max length) send their held-back text."""
        for request in self.requests:
            if not request.done:
                self.finish(request, "length", self.tokenizer.decode(request.tokens, skip_special_tokens=True))


def _row_sampling(temperatures: list[float], top_ps: list[float]) -> Any:
    """A logits processor with temperature and top-p per row (transformers' warpers take one value for
    the whole batch). Greedy rows (temperature 0) become one-hot on their argmax, so sampling the batch
    leaves them exactly greedy."""
    import torch
    from transformers import LogitsProcessor

    class RowSampling(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            temps = torch.tensor(temperatures, device=scores.device, dtype=scores.dtype)
            top_p = torch.tensor(top_ps, device=scores.device, dtype=scores.dtype)
            scaled = scores / temps.clamp(min=1e-5)[:, None]
            ordered, order = scaled.sort(dim=-1, descending=True)
            probs = ordered.softmax(dim=-1)
            drop = (probs.cumsum(dim=-1) - probs) > top_p[:, None]  # the most likely token always stays
            scaled = scaled.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
            greedy = torch.full_like(scores, float("-inf")).scatter(-1, scores.argmax(-1, keepdim=True), 0.0)
            return torch.where((temps <= 0)[:, None], greedy, scaled)

    return RowSampling()


class AdapterServer:
    """One base model in memory; adapters loaded on demand; concurrent requests batched (module doc)."""

    def __init__(self, base_path: str | Path, *, max_resident: int | None = None, batch_wait_ms: float | None = None,
                 max_batch: int | None = None):
        settings = get_serving_settings()
        self.base_path = str(base_path)
        self.max_resident = max_resident or get_finetune_settings().max_resident_adapters
        self.batch_wait_s = (settings.batch_wait_ms if batch_wait_ms is None else batch_wait_ms) / 1000
        self.max_batch = max_batch or settings.max_batch
        self.lock = threading.RLock()  # the model's state: loading, adapters, forward passes
        self.base_loads = 0
        self.adapter_loads = 0
        self.batches: list[int] = []  # size of each batch run (tests and the benchmark read it)
        self._base: Any = None
        self._model: Any = None  # the PeftModel wrapping _base, once an adapter is loaded
        self._tokenizer: Any = None
        self._end_ids: set[int] = set()
        self._resident: OrderedDict[str, str] = OrderedDict()  # adapter name -> peft key
        self._queue: queue.SimpleQueue[GenerationRequest] = queue.SimpleQueue()
        self._deferred: list[GenerationRequest] = []  # taken from the queue but left for the next batch
        self._scheduler: threading.Thread | None = None

    # --- loading --------------------------------------------------------------------------------------
    def _ensure_base(self) -> None:
        with self.lock:
            if self._base is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM

            from switchyard.finetune.train import device, load_tokenizer

            cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if cuda_bf16 else torch.float32
            self._base = AutoModelForCausalLM.from_pretrained(self.base_path, dtype=dtype).to(device()).eval()
            self._tokenizer = load_tokenizer(self.base_path)
            self._tokenizer.padding_side = "left"  # generation continues every row from its last token
            self._end_ids = self._end_token_ids()
            self.base_loads += 1

    def _end_token_ids(self) -> set[int]:
        """EOS, plus the token the chat template closes an assistant turn with (``<|im_end|>``)."""
        tok = self._tokenizer
        ids: set[int] = set()
        for value in (self._base.generation_config.eos_token_id, tok.eos_token_id):
            ids.update(value if isinstance(value, list) else [] if value is None else [value])
        marker = "SWITCHYARD_END_OF_TURN"
        turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}]
        rendered = tok.apply_chat_template(turns, tokenize=False)
        tail = tok(rendered.split(marker, 1)[-1], add_special_tokens=False)["input_ids"][:1]
        if tail and tail[0] in tok.all_special_ids:
            ids.update(tail)
        return ids

    def _load(self, name: str, path: str | Path | None) -> str:
        """The peft key of adapter ``name``, loading it if it is not resident (call with the lock held)."""
        self._ensure_base()
        if name in self._resident:
            self._resident.move_to_end(name)
            return self._resident[name]
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
        return key

    def _evict(self, keep: set[str]) -> None:
        """Delete least recently used adapters beyond ``max_resident``, never one in ``keep``."""
        for name in list(self._resident):
            if len(self._resident) <= self.max_resident:
                return
            if name not in keep:
                key = self._resident.pop(name)
                if self._model.active_adapter == key:
                    self._model.set_adapter(self._resident[next(iter(keep))])
                self._model.delete_adapter(key)

    def _activate(self, name: str | None, path: str | Path | None) -> Any:
        """The model to run: the peft model with ``name`` active, or None for the base."""
        self._ensure_base()
        if name is None:
            return None
        key = self._load(name, path)
        self._model.set_adapter(key)
        self._evict({name})
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

    def logits(self, text: str, adapter: str | None = None, *, path: str | Path | None = None) -> Any:
        """Next-token logits over ``text`` (tests compare adapters and the frozen base with these)."""
        import torch

        with self.using(adapter, path) as model:
            ids = self._tokenizer(text, return_tensors="pt").to(model.device)
            with torch.no_grad():
                return model(**ids).logits.float().cpu()

    # --- requests -------------------------------------------------------------------------------------
    def submit(self, messages: list[dict[str, Any]], adapter: str | None = None, *, max_new_tokens: int = 64,
               temperature: float = 0.0, top_p: float = 1.0, stop: list[str] | None = None,
               path: str | Path | None = None) -> GenerationRequest:
        """Queue a chat request; iterate the returned request for its text pieces."""
        self._ensure_base()
        ids = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        request = GenerationRequest(list(ids), adapter, str(path) if path else None, max(1, max_new_tokens),
                                    temperature, top_p, [s for s in stop or [] if s])
        self._queue.put(request)
        with self.lock:
            if self._scheduler is None or not self._scheduler.is_alive():
                self._scheduler = threading.Thread(target=self._schedule, name="switchyard-batcher", daemon=True)
                self._scheduler.start()
        return request

    def stream(self, messages: list[dict[str, Any]], adapter: str | None = None, **options: Any) -> Iterator[str]:
        """Text pieces as they are generated."""
        yield from self.submit(messages, adapter, **options)

    def generate(self, messages: list[dict[str, Any]], adapter: str | None = None, **options: Any) -> str:
        return "".join(self.submit(messages, adapter, **options))

    # --- the scheduler --------------------------------------------------------------------------------
    def _schedule(self) -> None:
        while True:
            batch = self._collect()
            try:
                with self.lock:
                    self._run(batch)
            except BaseException as exc:  # every waiting consumer hears of it; the scheduler lives on
                for request in batch:
                    if not request.done:
                        request.done = True
                        request.out.put(exc)
                        request.out.put(_END)

    def _collect(self) -> list[GenerationRequest]:
        """The next batch: deferred requests first, then whatever arrives within the wait window, with at
        most ``max_resident`` distinct adapters (the rest wait for the next batch)."""
        batch, self._deferred = self._deferred, []
        if not batch:
            batch.append(self._queue.get())
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        adapters: list[str] = []
        taken: list[GenerationRequest] = []
        for request in batch:
            if request.cancelled:
                request.done = True
                continue
            if request.adapter is not None and request.adapter not in adapters:
                if len(adapters) >= self.max_resident:
                    self._deferred.append(request)
                    continue
                adapters.append(request.adapter)
            taken.append(request)
        return taken

    def _run(self, batch: list[GenerationRequest]) -> None:
        import torch

        if not batch:
            return
        names = {r.adapter for r in batch if r.adapter is not None}
        keys = {r.adapter: self._load(r.adapter, r.adapter_path) for r in batch if r.adapter is not None}
        if names:
            self._evict(names)
        model = self._model if self._model is not None else self._base
        inputs = self._tokenizer.pad({"input_ids": [r.input_ids for r in batch]}, return_tensors="pt").to(model.device)
        progress = _BatchProgress(batch, self._tokenizer, self._end_ids)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else min(self._end_ids)
        kwargs: dict[str, Any] = {"max_new_tokens": max(r.max_new_tokens for r in batch), "pad_token_id": pad,
                                  "eos_token_id": sorted(self._end_ids), "stopping_criteria": [progress],
                                  "do_sample": False}
        if any(r.temperature > 0 for r in batch):
            kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                          logits_processor=[_row_sampling([r.temperature for r in batch], [r.top_p for r in batch])])
        self.batches.append(len(batch))
        with torch.no_grad():
            if self._model is None:
                self._base.generate(**inputs, **kwargs)
            elif not names:
                with self._model.disable_adapter():
                    self._model.generate(**inputs, **kwargs)
            elif len(names) == 1 and all(r.adapter is not None for r in batch):
                self._model.set_adapter(keys[next(iter(names))])
                self._model.generate(**inputs, **kwargs)
            else:  # peft's mixed-adapter batch: each row runs its own adapter (or none)
                self._model.generate(**inputs, **kwargs,
                                     adapter_names=[keys[r.adapter] if r.adapter else _BASE for r in batch])
        progress.flush()


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


class ChatLocalAdapter(BaseChatModel):
    """A LangChain chat model answering with a registered adapter (or the bare base) on a resident base."""

    adapter: str | None = Field(default=None, description="registered adapter name; None = the base model")
    base_model: str | None = Field(default=None, description="base model (name or path) when adapter is None")
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] | None = None

    @property
    def _llm_type(self) -> str:
        return "switchyard-local-adapter"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "base_model": self.base_model, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p, "stop": self.stop}

    def _server(self) -> tuple[AdapterServer, str | None]:
        if self.adapter is not None:
            from switchyard.finetune import adapters

            record = adapters.get_adapter(self.adapter)
            return server_for(record.base_path), str(adapters.local_dir(record))
        if self.base_model is None:
            raise ValueError("ChatLocalAdapter needs an adapter or a base_model")
        from switchyard.finetune.models import resolve_model

        return server_for(resolve_model(self.base_model)), None

    def _submit(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationRequest:
        server, path = self._server()
        max_new = kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens))
        return server.submit(_role_dicts(messages), self.adapter, path=path, max_new_tokens=max_new,
                             temperature=kwargs.get("temperature", self.temperature),
                             top_p=kwargs.get("top_p", self.top_p), stop=[*(self.stop or []), *(stop or [])])

    def _metadata(self, request: GenerationRequest) -> dict[str, Any]:
        return {"response_metadata": {"model_name": self.adapter or self.base_model,
                                      "finish_reason": request.finish_reason},
                "usage_metadata": {"input_tokens": request.prompt_tokens, "output_tokens": request.completion_tokens,
                                   "total_tokens": request.prompt_tokens + request.completion_tokens}}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request = self._submit(messages, stop, kwargs)
        text = "".join(request)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, **self._metadata(request)))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request = self._submit(messages, stop, kwargs)
        for piece in request:
            # LangChain's stream()/invoke() report each yielded chunk to on_llm_new_token themselves.
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        # A last (possibly only) chunk with the metadata: an answer that is just EOS is still an answer.
        yield ChatGenerationChunk(message=AIMessageChunk(content="", **self._metadata(request)))
