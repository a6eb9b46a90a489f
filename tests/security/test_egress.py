"""Sandboxed inputs, from the attacker's side: file paths outside the roots, URLs on loopback, private
and link-local addresses, redirects to them, inline model endpoints and keys, callback URLs.

Traffic only ever goes to listeners this test starts on 127.0.0.1; every other address is refused by
the policy function itself, before any connection (no network needed).
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import uuid

import httpx
import pytest

from switchyard import dispatch, egress, jobs, outbound_webhooks, sandbox, task_catalog
from switchyard.config import reload_settings
from switchyard.egress import AllowEntry, EgressPolicy
from switchyard.errors import InputRefused, InvalidParamsError
from switchyard.finetune.config import reload_finetune_settings

pytestmark = pytest.mark.integration


class Listener(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that counts every TCP connection it accepts and records requests.
    ``routes`` maps a path to ``(status, headers, body)``."""

    daemon_threads = True

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None):
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.routes = routes or {}
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self):
        conn = super().get_request()
        self.connections += 1
        return conn

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        status, headers, body = self.server.routes.get(self.path, (200, {}, b"# Internal\n\nsecret page"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    servers: list[Listener] = []

    def start(routes=None) -> Listener:
        servers.append(Listener(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings_env(monkeypatch):
    """``settings_env(EGRESS_ALLOW="...")`` sets SWITCHYARD_* variables and reloads the settings. The
    egress allowlist starts empty here (tests/conftest.py allowlists "localhost" for other tests)."""

    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(f"SWITCHYARD_{key}", value)
        reload_settings()
        reload_finetune_settings()

    apply(EGRESS_ALLOW="", EGRESS_ALLOW_PRIVATE="false")
    yield apply
    monkeypatch.undo()
    reload_settings()
    reload_finetune_settings()


# --- the policy itself, no network ------------------------------------------------------------------

@pytest.mark.parametrize(("url", "rule"), [
    ("http://10.0.0.5/", "address"), ("http://192.168.1.1/admin", "address"), ("http://172.16.0.1/", "address"),
    ("http://169.254.169.254/latest/meta-data/", "address"), ("http://[::1]:8080/", "address"),
    ("http://0.0.0.0:80/", "address"), ("http://2130706433/", "address"), ("http://0x7f.1/", "address"),
    ("http://0xa9fea9fe/", "address"), ("http://167772161/", "address"),
    ("http://[::ffff:169.254.169.254]/", "address"),
    ("http://[::ffff:7f00:1]/", "address"), ("http://[fe80::1]/", "address"), ("http://[fd00::1]/", "address"),
    ("http://100.64.0.1/", "address"), ("http://224.0.0.251/", "address"), ("http://[64:ff9b::a9fe:a9fe]/", "address"),
    ("http://[2002:a9fe:a9fe::]/", "address"), ("http://240.0.0.1/", "address"),
    ("file:///etc/passwd", "scheme"), ("gopher://example.com/", "scheme"), ("ftp://example.com/x", "scheme"),
    ("http://user:hunter2@example.com/", "credentials"), ("http:///nohost", "url"),
])
def test_the_policy_refuses_without_connecting(url, rule):
    with pytest.raises(InputRefused) as refused:
        EgressPolicy().check_url(url)  # a literal address is judged as written: no DNS, no connect
    assert refused.value.rule == f"egress:{rule}" and "egress refused" in str(refused.value)


def test_the_allowlist_is_hosts_domains_or_url_prefixes():
    policy = EgressPolicy(allow=tuple(AllowEntry.parse(e) for e in (
        "docs.example.com", "*.corp.example", "https://api.example.org/v1/")))
    for ok in ("https://docs.example.com/a", "http://wiki.corp.example/x", "https://corp.example/",
               "https://api.example.org/v1/models"):
        policy.check_url(ok)
    for bad in ("https://evil.com/", "https://docs.example.com.evil.com/", "https://api.example.org/v2/",
                "http://api.example.org/v1/", "https://api.example.org/v1/../admin", "https://xcorp.example/"):
        with pytest.raises(InputRefused, match="allowlist"):
            policy.check_url(bad)
    # An explicit entry may be private (it was named); a wildcard may not.
    private = EgressPolicy(allow=(AllowEntry.parse("10.1.2.3"), AllowEntry.parse("*.internal")))
    private.check_url("http://10.1.2.3/")
    assert private.may_be_private("10.1.2.3", 80) and not private.may_be_private("db.internal", 80)


# --- file paths -------------------------------------------------------------------------------------

def _embedder():
    """LangChain's deterministic fake embeddings: these tests are about what is read, not retrieval."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from switchyard.retrieval.embedding import LangChainEmbedder

    return LangChainEmbedder(DeterministicFakeEmbedding(size=8))


def test_ingest_reads_no_path_outside_the_roots(stack, settings_env, tmp_path):
    from switchyard.retrieval import ingest_documents

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "ok.md").write_text("# Allowed\n\nThis file sits inside the root.")
    # Reading a FIFO blocks until a writer comes: had any of these been opened, the test would hang.
    os.mkfifo(outside / "pipe.md")
    (root / "link.md").symlink_to(outside / "pipe.md")
    (root / "dirlink").symlink_to(outside, target_is_directory=True)
    settings_env(FILE_ROOTS=str(root))
    attacks = ["/etc/passwd", str(root / ".." / "outside" / "pipe.md"), str(root / "link.md"),
               str(root / "dirlink" / "pipe.md"), "../../../../etc/passwd", f"file://{outside / 'pipe.md'}"]
    files = [{"path": p} for p in attacks] + [{"path": str(root / "ok.md")}]
    result = ingest_documents(f"sandbox-{uuid.uuid4().hex[:8]}", files=files, embedder=_embedder())
    failed = {f["id"]: f["error"] for f in result["failed"]}
    assert set(failed) == set(attacks)
    assert all("outside the allowed file roots" in e and "file_roots" in e for e in failed.values()), failed
    assert result["documents"] == 1  # only ok.md: nothing from outside was indexed
    assert sandbox.check_path(root / "ok.md") == (root / "ok.md").resolve()


def test_no_path_is_readable_by_default_not_even_another_tenants_upload(settings_env, tmp_path):
    settings_env(FILE_ROOTS="")
    assert sandbox.roots() == []
    # Uploads of every tenant share one directory: a path into it is refused; file ids are the way in.
    for ref in (os.path.join(sandbox.uploads_root(), "file-abc.jsonl"), "/etc/passwd", str(tmp_path)):
        with pytest.raises(InputRefused):
            sandbox.check_path(ref)


def test_a_finetune_training_file_may_not_be_a_server_path(settings_env, tmp_path):
    from switchyard.finetune import files, training_job

    settings_env(FILE_ROOTS=str(tmp_path), FINETUNE_ARTIFACTS_URL="s3://bucket/artifacts")
    for ref in ("/etc/passwd", "../../etc/shadow", "file:///etc/passwd", "s3://other-bucket/data.jsonl",
                "s3://bucket/artifacts/files/../../secrets.jsonl", "simplecache::s3://bucket/artifacts/files/x",
                "memory://x.jsonl"):
        with pytest.raises(InputRefused) as refused:
            files.read_bytes(ref, "default")
        assert refused.value.rule == "file_roots", ref
    with pytest.raises(InputRefused):  # uploads are named by file id, never by path
        sandbox.check_ref("s3://bucket/artifacts/files/file-1.jsonl")
    settings_env(FILE_ROOTS="s3://bucket/corpus/")
    assert sandbox.check_ref("s3://bucket/corpus/a.jsonl") == "s3://bucket/corpus/a.jsonl"
    with pytest.raises(InvalidParamsError) as invalid:
        training_job._records("/etc/passwd", "training_file", "default")
    assert invalid.value.errors[0]["loc"] == ["training_file"] and "file_roots" in invalid.value.errors[0]["msg"]


# --- URLs -------------------------------------------------------------------------------------------

def test_ingest_urls_on_loopback_get_no_connection(stack, settings_env, listener):
    from switchyard.retrieval import ingest_documents

    target = listener()
    port = target.server_port
    urls = [f"{target.url}/doc.md", f"http://localhost:{port}/doc.md", f"http://2130706433:{port}/doc.md",
            f"http://[::ffff:127.0.0.1]:{port}/doc.md", f"http://127.1:{port}/doc.md"]
    result = ingest_documents(f"ssrf-{uuid.uuid4().hex[:8]}", files=[{"url": u} for u in urls], embedder=_embedder())
    failed = {f["id"]: f["error"] for f in result["failed"]}
    assert set(failed) == set(urls) and all("egress refused" in e for e in failed.values()), failed
    assert result["documents"] == 0
    assert target.connections == 0  # refused before connecting, names resolved or not


def test_the_connect_itself_is_checked(settings_env, listener):
    """A name that passes the URL check (no resolution) is still refused at the socket: the guarded
    transport resolves, checks and connects to the checked address itself."""
    target = listener()
    policy = EgressPolicy()
    url = f"http://localhost:{target.server_port}/"
    policy.check_url(url)  # the static check cannot know what "localhost" resolves to
    with egress.client(policy) as http, pytest.raises(InputRefused, match="loopback"):
        http.get(url)
    assert target.connections == 0


def test_redirects_are_checked_hop_by_hop(settings_env, listener):
    hidden = listener()
    bounce = listener()
    bounce.routes.update({
        "/to-hidden": (302, {"Location": f"{hidden.url}/"}, b""),
        "/to-hidden-by-name": (307, {"Location": f"http://localhost:{hidden.server_port}/"}, b""),
        "/to-metadata": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/hop": (302, {"Location": "/ok"}, b""),
        "/ok": (200, {}, b"fine"),
        "/loop": (302, {"Location": "/loop"}, b""),
    })
    # Only the bouncing listener is allowed (an explicit entry, so its loopback address is too).
    settings_env(EGRESS_ALLOW=f"{bounce.url}/", EGRESS_MAX_REDIRECTS="3")
    assert egress.fetch(f"{bounce.url}/hop") == (b"fine", f"{bounce.url}/ok")
    for path in ("/to-hidden", "/to-hidden-by-name", "/to-metadata", "/to-file"):
        with pytest.raises(InputRefused):
            egress.fetch(f"{bounce.url}{path}")
    with pytest.raises(InputRefused, match="redirects"):
        egress.fetch(f"{bounce.url}/loop")
    assert hidden.connections == 0


def test_fetches_stop_past_the_size_limit(settings_env, listener):
    big = listener({"/big": (200, {}, b"x" * 200_000)})
    settings_env(EGRESS_ALLOW=f"{big.url}/", EGRESS_MAX_BYTES="1000")
    with pytest.raises(InputRefused, match="larger than 1000 bytes"):
        egress.fetch(f"{big.url}/big")


# --- inline models ----------------------------------------------------------------------------------

def test_an_inline_model_may_not_name_a_loopback_endpoint_or_carry_a_key(settings_env, listener):
    from switchyard.llm import get_chat_model

    target = listener()
    for base in (f"{target.url}/v1", f"http://localhost:{target.server_port}/v1"):
        with pytest.raises(InputRefused, match="loopback"):
            get_chat_model({"provider": "openai", "model": "m", "base_url": base})
    for config in ({"provider": "openai", "model": "m", "api_key": "anything"},
                   {"provider": "openai", "model": "m", "openai_api_key": "sk-" + "a" * 40},
                   {"provider": "openai", "model": "m", "default_headers": {"Authorization": "Bearer abcdefghijk"}}):
        with pytest.raises(InputRefused, match="secrets"):
            get_chat_model(config)
    with pytest.raises(InputRefused, match="may not set"):
        get_chat_model({"provider": "openai", "model": "m", "openai_proxy": "http://10.0.0.1:3128"})
    assert target.connections == 0


def test_an_inline_model_config_with_a_key_is_refused_at_validation():
    from graphs import GRAPHS

    params = {"graph": next(iter(GRAPHS)), "thread_id": "t1", "input": {"messages": []},
              "config": {"configurable": {"model": {"provider": "openai", "model": "gpt-4o-mini",
                                                    "api_key": "sk-" + "z" * 40}}}}
    with pytest.raises(InvalidParamsError) as invalid:
        task_catalog.validate_params("switchyard.agent.run", params)
    error = invalid.value.errors[0]
    assert error["type"] == "secret_refused" and error["loc"][-1] == "api_key"
    assert "z" * 40 not in str(invalid.value)  # the refusal never repeats the secret


def test_a_caller_endpoint_never_gets_the_operator_key(settings_env, listener, monkeypatch):
    from switchyard.llm import get_chat_model

    target = listener({"/v1/chat/completions": (500, {}, b"{}")})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-" + "k" * 32)
    settings_env(EGRESS_ALLOW=f"{target.url}/")  # the operator allows this endpoint, not their key
    llm = get_chat_model({"provider": "openai", "model": "m", "base_url": f"{target.url}/v1", "max_retries": 0})
    with pytest.raises(Exception):  # noqa: B017 - the listener answers 500; only the request matters
        llm.invoke("hi")
    (path, headers), = target.requests
    authorization = {k.lower(): v for k, v in headers.items()}["authorization"]
    assert path == "/v1/chat/completions"
    assert "operator" not in authorization and authorization == "Bearer no-key-for-caller-endpoints"


def test_a_configured_model_keeps_its_loopback_endpoint(settings_env, monkeypatch):
    from switchyard.llm import factory, get_chat_model

    monkeypatch.setenv("SWITCHYARD_LLM_MODELS", '{"local-vllm": {"provider": "openai", "model": "q", '
                       '"base_url": "http://127.0.0.1:9/v1", "api_key": "operator-key"}}')
    factory.get_llm_settings.cache_clear()
    try:
        llm = get_chat_model("local-vllm")  # the operator's configuration: trusted as configured
        assert "127.0.0.1:9" in str(llm.openai_api_base)
    finally:
        factory.get_llm_settings.cache_clear()


# --- callbacks --------------------------------------------------------------------------------------

def test_a_loopback_callback_url_is_refused_at_the_way_in(stack, settings_env, listener, api_server):
    target = listener()
    for url in (f"{target.url}/cb", f"http://localhost:{target.server_port}/cb", "http://169.254.169.254/x"):
        with pytest.raises(InvalidParamsError) as invalid:
            dispatch.enqueue("control.ping", {}, callback_url=url, idempotency_key=f"cb-{uuid.uuid4()}")
        assert invalid.value.errors[0]["loc"] == ["callback_url"]
        assert invalid.value.errors[0]["type"] == "egress_refused"
    response = httpx.post(f"{api_server.url}/jobs", json={"kind": "control.ping", "callback_url": f"{target.url}/cb"},
                          timeout=30)
    assert response.status_code == 422 and "egress refused" in response.text
    assert target.connections == 0


def test_a_callback_recorded_past_the_way_in_is_refused_at_delivery(stack, settings_env, listener):
    """A broker producer (trusted zone) may still name one: the delivery is refused and not retried."""
    target = listener()
    job, _ = jobs.create("switchyard.control.ping", {}, callback_url=f"{target.url}/cb")
    from switchyard.db import connection

    with connection() as conn:
        conn.execute(outbound_webhooks.UPSERT_SQL, (job.id, job.callback_url))
    assert outbound_webhooks.deliver_callback(job.id) is None
    with connection() as conn:
        row = conn.execute("SELECT status, last_error FROM callback_deliveries WHERE job_id = %s",
                           (job.id,)).fetchone()
    assert row["status"] == "failed" and "egress refused" in row["last_error"]
    assert target.connections == 0


# --- secrets ----------------------------------------------------------------------------------------

SECRET = "sk-" + "s3cr3t" * 6


def test_secrets_in_params_are_refused_and_never_stored(stack, api_server):
    response = httpx.post(f"{api_server.url}/jobs", timeout=30, json={
        "kind": "control.ping", "params": {"seconds": 0, "headers": {"Authorization": f"Bearer {SECRET}"}}})
    assert response.status_code == 422 and SECRET not in response.text
    assert response.json()["error"]["details"][0]["type"] == "secret_refused"

    # A raw broker message (no API in between) fails its job, and the ledger keeps no secret.
    from switchyard import events
    from switchyard.runner import Delivery, run_job

    job_id = f"raw-secret-{uuid.uuid4()}"
    run_job(Delivery("switchyard.control.ping", job_id, {"seconds": 0, "api_key": SECRET}),
            lambda params, ctx: pytest.fail("an invalid message must not run"))
    job = jobs.get(job_id)
    assert job.status.value == "failed" and job.params["api_key"] == "[redacted]"
    stored = json.dumps([job.to_dict(), [e.data for e in events.replay(job_id, 0)]], default=str)
    assert SECRET not in stored and "secret_refused" in stored
