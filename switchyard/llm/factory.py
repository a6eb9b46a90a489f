"""``get_chat_model(name_or_config)``: LangChain chat models from configuration.

A model is named in ``SWITCHYARD_LLM_MODELS`` (JSON ``{"name": {config}}``) or given inline as a config
dict. Providers:

- ``openai``: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio) via langchain-openai;
  keys ``model``, ``base_url``, ``api_key`` and any ``ChatOpenAI`` field.
- ``local``: the fine-tune pool's transformers provider with a named LoRA adapter (hot-swapped);
  keys ``adapter``, ``base_model`` and the provider's own fields.
- ``scripted``: LangChain's fake chat model replaying ``responses`` (tests, demos without a model).

The shorthand ``"provider:model"`` works too (``"openai:gpt-4o-mini"``, ``"local:support-bot"``).
Heavy imports happen inside the builders: a graph that never calls a model never imports one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard.errors import ConfigurationError


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_LLM_", extra="ignore")

    # {"name": {"provider": "openai", "model": "...", "base_url": "..."}, ...}
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The model a run gets when it names none (`switchyard dev` points it at the local demo model).
    default_model: str = "scripted"


@lru_cache(maxsize=1)
def get_llm_settings() -> LLMSettings:
    return LLMSettings()


def model_spec(name_or_config: str | dict[str, Any] | None) -> dict[str, Any]:
    """Resolve a model name, shorthand or inline config to a config dict with a ``provider``."""
    settings = get_llm_settings()
    if name_or_config is None:
        name_or_config = settings.default_model
    if isinstance(name_or_config, dict):
        spec = dict(name_or_config)
    elif name_or_config in settings.models:
        spec = dict(settings.models[name_or_config])
        spec.setdefault("name", name_or_config)
    elif ":" in name_or_config:
        provider, _, model = name_or_config.partition(":")
        key = "adapter" if provider == "local" else "model"
        spec = {"provider": provider, key: model}
    elif name_or_config == "scripted":
        spec = {"provider": "scripted"}
    else:
        raise ConfigurationError(
            f"unknown model {name_or_config!r}: name one of {sorted(settings.models)} "
            "(SWITCHYARD_LLM_MODELS), or use 'openai:<model>', 'local:<adapter>' or an inline config"
        )
    if spec.get("provider") not in _BUILDERS:
        raise ConfigurationError(f"model {name_or_config!r}: provider must be one of {sorted(_BUILDERS)}")
    return spec


def get_chat_model(name_or_config: str | dict[str, Any] | None = None) -> Any:
    """A LangChain ``BaseChatModel`` for a configured name or an inline config (see module doc)."""
    spec = model_spec(name_or_config)
    options = {k: v for k, v in spec.items() if k not in ("provider", "name")}
    return _BUILDERS[spec["provider"]](options)


def _openai(options: dict[str, Any]) -> Any:
    from langchain_openai import ChatOpenAI

    options.setdefault("stream_usage", True)  # usage_metadata on streamed answers too
    return ChatOpenAI(**options)


def _local(options: dict[str, Any]) -> Any:
    try:
        from switchyard.finetune.serving import ChatLocalAdapter
    except ImportError as exc:
        raise ConfigurationError(f"the local model provider is not installed (switchyard[finetune]): {exc}") from exc
    return ChatLocalAdapter(**options)


def _scripted(options: dict[str, Any]) -> Any:
    from switchyard.llm.scripted import ScriptedChatModel

    return ScriptedChatModel.from_config(options)


_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "openai": _openai,
    "local": _local,
    "scripted": _scripted,
}


def parse_models_env(raw: str) -> dict[str, dict[str, Any]]:
    """Validate a ``SWITCHYARD_LLM_MODELS`` value (the CLI's ``config`` check uses it)."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigurationError("SWITCHYARD_LLM_MODELS must be a JSON object of name -> config object")
    return data
