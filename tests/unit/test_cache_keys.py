"""The LLM cache's pure parts: keys, scoping, sampled calls, guards, the codec and the LRU."""

from __future__ import annotations

import time

from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from switchyard.cache import codec, guards, keys
from switchyard.cache.lru import LocalLRU
from switchyard.cache.streaming import cached_hit, token_pieces


def test_exact_key_covers_prompt_model_params_and_namespace():
    prompt, llm = dumps([HumanMessage("hi")]), "{'model_name': 'gpt-4o-mini'}---[('stop', None)]"
    base = keys.exact_key("p", "acme/agent", prompt, llm)
    assert base == keys.exact_key("p", "acme/agent", prompt, llm)
    assert base != keys.exact_key("p", "globex/agent", prompt, llm)  # another tenant
    assert base != keys.exact_key("p", "acme/agent", dumps([HumanMessage("hi!")]), llm)
    assert base != keys.exact_key("p", "acme/agent", prompt, llm + "[('tools', [...])]")  # other tools
    assert base.startswith("p:e:acme/agent:gpt-4o-mini:")


def test_key_segments_hold_no_glob_or_separator_characters():
    key = keys.exact_key("p", "we*ird:ns?[x]", "prompt", "model_name: 'a:b*'")
    ns_and_model = key.split(":e:", 1)[1].rsplit(":", 1)[0]
    assert not set("*?[]\\") & set(ns_and_model) and ns_and_model.count(":") == 1
    assert keys.namespace_of(key) == "we*ird:ns?[x]"


def test_sampled_calls_are_recognised():
    assert keys.is_sampled('{"kwargs": {"temperature": 0.7}}---[]')
    assert keys.is_sampled("[('temperature', 1.0), ('_type', 'x')]")
    assert not keys.is_sampled("[('temperature', 0.0)]")
    assert not keys.is_sampled("[('_type', 'x')]")


def test_prompt_text_is_the_whole_conversation():
    text = keys.prompt_text(dumps([SystemMessage("Be brief."), HumanMessage("Capital of France?"),
                                   AIMessage("Paris."), HumanMessage("And of Spain?")]))
    assert text.splitlines() == ["system: Be brief.", "human: Capital of France?", "ai: Paris.",
                                 "human: And of Spain?"]
    assert keys.prompt_text("plain prompt") == "plain prompt"


def test_namespaces_and_invalidation_patterns():
    assert keys.namespace_for("acme") == "acme/agent"
    assert keys.namespace_for("acme", "rag", collection="handbook") == "acme/rag/handbook"
    assert keys.pattern("p", "acme/agent") == "p:e:acme/agent:*:*"
    assert keys.pattern("p", model="gpt-4o") == "p:e:*:gpt-4o:*"
    assert keys.pattern("p", "acme", collection="handbook") == "p:e:acme/*/handbook:*:*"


def test_guards_catch_negations_numbers_entities_and_swapped_words():
    same = guards.compatible
    sig = guards.signature
    assert same(sig("What is the capital of France?"), sig("Tell me France's capital city."))
    assert not same(sig("Is it safe to drink?"), sig("Is it not safe to drink?"))
    assert not same(sig("Is it safe to drink?"), sig("Isn't it safe to drink?"))
    assert not same(sig("What is 15% of 200?"), sig("What is 25% of 200?"))
    assert not same(sig("How many legs do two spiders have?"), sig("How many legs do 3 spiders have?"))
    assert not same(sig("Who is the CEO of Microsoft?"), sig("Who is the CEO of Google?"))
    assert not same(sig("How do I enable two-factor login?"), sig("How do I disable two-factor login?"))
    assert same(sig("How do I reset my password?"), sig("How can I reset my password?"))


def test_codec_round_trips_and_compresses():
    gens = [ChatGeneration(message=AIMessage("hello", usage_metadata={"input_tokens": 3, "output_tokens": 2,
                                                                      "total_tokens": 5})),
            Generation(text="plain", generation_info={"k": 1})]
    assert codec.decode(codec.encode(gens)) == gens
    big = [Generation(text="x" * 5000)]
    value = codec.encode(big, compress_min_bytes=1024)
    assert value[:1] == b"z" and len(value) < 200 and codec.decode(value) == big


def test_a_decoded_hit_is_marked_with_zero_usage_and_a_fresh_id():
    gens = [ChatGeneration(message=AIMessage("hello world", id="original", usage_metadata={
        "input_tokens": 3, "output_tokens": 2, "total_tokens": 5}))]
    mark = {"layer": "redis"}
    hit = codec.decode(codec.encode(gens), mark)[0].message
    assert cached_hit(hit)["layer"] == "redis" and mark["saved"]["total_tokens"] == 5
    assert hit.usage_metadata["total_tokens"] == 0 and hit.id != "original"
    assert "".join(token_pieces("hello  world\n")) == "hello  world\n" and len(token_pieces("a b c")) == 3


def test_lru_is_bounded_and_expires():
    lru = LocalLRU(maxsize=2, ttl_s=60)
    lru.put("a", b"1")
    lru.put("b", b"2")
    assert lru.get("a") == b"1"
    lru.put("c", b"3")  # evicts b, the least recently used
    assert lru.get("b") is None and lru.get("a") == b"1"
    lru.put("d", b"4", ttl_s=0.01)
    time.sleep(0.02)
    assert lru.get("d") is None
    assert lru.clear(lambda k: k == "a") == 1 and lru.get("a") is None


def test_exact_keys_memo_equals_exact_key():
    made = keys.ExactKeys("p", "acme/agent")
    for prompt, llm in [("hi", "model_name: 'a'"), ("hi", "model_name: 'b', temperature: 0.3"),
                        (dumps([HumanMessage("ünïcode")]), "model_name: 'a'")]:
        assert made.key(prompt, llm) == keys.exact_key("p", "acme/agent", prompt, llm)
        assert made.sampled(llm) == keys.is_sampled(llm)


def test_collection_namespaces_key_entries_on_the_version():
    assert keys.collection_scope("acme/rag/handbook") == ("acme", "handbook")
    assert keys.collection_scope("acme/agent") is None
    entry = keys.versioned(keys.exact_key("p", "acme/rag/handbook", "q", "m"), "3f2a")
    assert entry.endswith(":3f2a") and keys.namespace_of(entry) == "acme/rag/handbook"
    # A collection's invalidation pattern still finds its versioned entries.
    import fnmatch

    assert fnmatch.fnmatchcase(entry, keys.pattern("p", "acme", collection="handbook"))
    assert keys.version_key("p", "acme", "hand:book") == "p:cv:acme/hand%3Abook"


def test_fast_construct_equals_model_construct():
    """codec._Construct builds the same models as pydantic's model_construct (it mirrors its internals)."""
    message = AIMessage("hi", id="x", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
                        tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1"}], response_metadata={"m": 1})
    data = message.model_dump()
    assert codec._ai_message.fast and codec._chat_gen.fast
    for values in (data, {"content": "partial", "id": "y"}):  # every field, and defaults filled in
        fast, slow = codec._ai_message(dict(values)), AIMessage.model_construct(**dict(values))
        assert fast == slow and repr(fast) == repr(slow)
        assert fast.model_fields_set == slow.model_fields_set and fast.__pydantic_extra__ == slow.__pydantic_extra__
    decoded = codec.decode(codec.encode([ChatGeneration(message=message)]))[0]
    reference = ChatGeneration.model_construct(message=AIMessage.model_construct(**data), text="hi",
                                               generation_info=None)
    assert decoded == reference and repr(decoded) == repr(reference)
    assert decoded.model_fields_set == reference.model_fields_set
    assert decoded.message.tool_calls == message.tool_calls and decoded.text == "hi"
    decoded.message.tool_calls.append({"name": "g", "args": {}, "id": "c2"})  # a caller's mutation stays its own
    assert len(codec.decode(codec.encode([ChatGeneration(message=message)]))[0].message.tool_calls) == 1


def test_hit_metrics_are_priced_at_flush_time(monkeypatch):
    from switchyard.cache import metrics

    monkeypatch.setattr(metrics, "price_of", lambda model, usage: usage["input_tokens"] * 1e-6 if model == "m" else 0)
    stats = metrics.Stats()
    saved = {"input_tokens": 100, "output_tokens": 5, "total_tokens": 105}
    stats._thread = object()  # no flusher thread in a unit test
    for _ in range(3):
        stats.hit((None, "p"), "acme/agent", "redis", 0.001, saved, "m")
    stats.miss((None, "p"), "acme/agent")
    pending = stats.pending()
    assert pending[(None, "p", "acme/agent", "redis:hits")] == 3
    assert pending[(None, "p", "acme/agent", "redis:tokens_saved")] == 315
    assert abs(pending[(None, "p", "acme/agent", "redis:cost_saved_usd")] - 300e-6) < 1e-12
    assert pending[(None, "p", "acme/agent", "misses")] == 1 and stats.pending() == {}
