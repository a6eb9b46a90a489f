from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from switchyard.errors import ConfigurationError
from switchyard.llm import factory, get_chat_model, model_spec


@pytest.fixture
def models(monkeypatch):
    monkeypatch.setenv("SWITCHYARD_LLM_MODELS", '{"vllm": {"provider": "openai", "model": "qwen", '
                       '"base_url": "http://127.0.0.1:9/v1", "api_key": "x"}}')
    monkeypatch.setenv("SWITCHYARD_LLM_DEFAULT_MODEL", "vllm")
    factory.get_llm_settings.cache_clear()
    yield
    factory.get_llm_settings.cache_clear()


def test_named_shorthand_and_inline_models(models):
    from langchain_openai import ChatOpenAI

    llm = get_chat_model()  # the default name
    assert isinstance(llm, ChatOpenAI) and llm.model_name == "qwen" and "127.0.0.1:9" in str(llm.openai_api_base)
    assert model_spec("openai:gpt-4o-mini") == {"provider": "openai", "model": "gpt-4o-mini"}
    assert model_spec("local:support-bot") == {"provider": "local", "adapter": "support-bot"}
    with pytest.raises(ConfigurationError, match="unknown model"):
        get_chat_model("gpt-x")
    with pytest.raises(ConfigurationError, match="provider"):
        get_chat_model({"provider": "carrier-pigeon"})


def test_scripted_model_is_replay_safe_and_streams_whole_text():
    llm = get_chat_model({"provider": "scripted", "responses": ["first answer", "second  answer\n"]})
    history = [HumanMessage("q")]
    assert llm.invoke(history).content == llm.invoke(history).content == "first answer"
    history += [AIMessage("first answer"), HumanMessage("again")]
    chunks = list(llm.stream(history))
    assert "".join(c.content for c in chunks) == "second  answer\n"
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.usage_metadata["output_tokens"] == 2 and full.response_metadata["model_name"] == "scripted"
