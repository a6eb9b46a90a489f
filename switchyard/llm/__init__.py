"""Chat models by name: one factory for every graph, so an LLM cache can be attached in one place."""

from switchyard.llm.factory import LLMSettings, get_chat_model, get_llm_settings, model_spec

__all__ = ["LLMSettings", "get_chat_model", "get_llm_settings", "model_spec"]
