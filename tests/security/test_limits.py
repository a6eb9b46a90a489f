"""Uniform limits, from the attacker's side: oversized and deeply nested bodies on every route that
takes one, a per-key rate limit, and ``/metrics`` behind a key."""

from __future__ import annotations

import re
import sys

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from switchyard.api.app import create_app
from switchyard.api.limits import json_depth, json_depth_problem
from switchyard.api.ratelimit import caller_identity
from switchyard.config import Settings

pytestmark = pytest.mark.integration

MAX_BODY = 1_048_576  # SWITCHYARD_API_MAX_BODY's default, which the shared api_server runs with
DEEP = ('{"a": ' * 100 + "1" + "}" * 100).encode()


def body_routes() -> list[tuple[str, str]]:
    """``(method, path)`` of every route that takes a body, path parameters filled in."""
    found = []
    # FastAPI nests included routers; iter_route_contexts flattens app.routes into every route.
    for route in iter_route_contexts(create_app().routes):
        for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH"}):
            found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


ROUTES = body_routes()


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server.url, timeout=60) as client:
        yield client


def test_every_body_route_is_covered():
    paths = {path for _method, path in ROUTES}
    assert {"/jobs", "/hooks/x", "/threads/x/runs", "/v1/files", "/v1/fine_tuning/jobs"} <= paths


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_oversized_body_is_413_and_deep_json_is_422_on_every_route(http, method, path):
    big = b'{"a": "' + b"x" * MAX_BODY + b'"}'
    response = http.request(method, path, content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "payload_too_large"

    response = http.request(method, path, content=DEEP, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["details"][0]["type"] == "json_too_deep"


@pytest.mark.parametrize("path", ["/jobs", "/threads/x/runs", "/hooks/control.ping"])
def test_a_body_without_content_length_is_counted_while_read(http, path):
    def chunks():
        for _ in range(20):
            yield b"x" * 65_536  # 1.25 MiB in all, no Content-Length (chunked)

    response = http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["type"] == "payload_too_large"


def test_json_depth_counting():
    assert json_depth(1) == 0 and json_depth({}) == 1 and json_depth([[{"a": [1]}]]) == 4
    assert json_depth_problem(b"[" * 65 + b"]" * 65, 64) and not json_depth_problem(b"[" * 64 + b"]" * 64, 64)
    assert json_depth_problem(b"[" * 100_000 + b"]" * 100_000, 64)  # deeper than the decoder recurses
    assert json_depth_problem(b"not json {", 64) is None


# --- a stack with keys, a tight rate limit, a metrics key and a small upload limit -----------------

KEYS = {"alice": "key-alice-1", "bob": "key-bob-1", "carol": "key-carol-1"}
METRICS_KEY = "metrics-key-1"


@pytest.fixture(scope="module")
def limited_api(stack, process_factory):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    env = {"SWITCHYARD_API_KEYS": ",".join(f"{key}:{tenant}" for tenant, key in KEYS.items()),
           "SWITCHYARD_RATE_LIMIT_PER_S": "0.1", "SWITCHYARD_RATE_LIMIT_BURST": "3",
           "SWITCHYARD_METRICS_KEY": METRICS_KEY, "SWITCHYARD_FINETUNE_MAX_FILE_BYTES": "2000",
           "SWITCHYARD_API_MAX_BODY": "4096"}
    handle = process_factory("api-limited", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                             env=env)
    wait_for_port(port, timeout=60)
    yield f"http://127.0.0.1:{port}"
    handle.terminate()


def _as(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def test_rate_limit_per_key_with_retry_after(limited_api):
    with httpx.Client(base_url=limited_api, timeout=30) as http:
        assert [http.get("/jobs", headers=_as("alice")).status_code for _ in range(3)] == [200] * 3
        limited = http.get("/jobs", headers=_as("alice"))
        assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Another key has its own bucket; probes are never counted.
        assert http.get("/jobs", headers=_as("bob")).status_code == 200
        assert all(http.get("/healthz").status_code == 200 for _ in range(5))


def test_metrics_want_the_key_and_serve_no_secret(limited_api):
    with httpx.Client(base_url=limited_api, timeout=30) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/metrics", headers=_as("alice")).status_code == 401  # an API key is not the metrics key
        scraped = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
        assert scraped.status_code == 200 and "switchyard_jobs" in scraped.text
        assert not any(secret in scraped.text for secret in [METRICS_KEY, *KEYS.values()])


def test_uploads_have_their_own_limit_counted_while_read(limited_api):
    boundary = "sy-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        yield head
        for _ in range(10):
            yield b"x" * 1000  # 10 kB: past both API_MAX_BODY and the upload limit
        yield tail

    headers = {**_as("carol"), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    with httpx.Client(base_url=limited_api, timeout=30) as http:
        declared = http.post("/v1/files", content=head + b"x" * 10_000 + tail, headers=headers)
        assert declared.status_code == 413 and declared.json()["error"]["type"] == "payload_too_large"
        streamed = http.post("/v1/files", content=chunks(), headers=headers)  # chunked: no Content-Length
        assert streamed.status_code == 413 and streamed.json()["error"]["type"] == "payload_too_large"


def test_who_is_counted():
    settings = Settings(api_keys="k1:acme")

    def scope(path: str, headers: dict[str, str]) -> dict:
        return {"type": "http", "path": path, "client": ("10.9.8.7", 5555),
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    keyed = caller_identity(scope("/jobs", {"Authorization": "Bearer k1"}), settings)
    assert keyed.startswith("key:") and "k1" not in keyed  # a digest, never the key itself
    assert caller_identity(scope("/jobs", {"X-API-Key": "unknown"}), settings) == "ip:10.9.8.7"
    assert caller_identity(scope("/hooks/index.ingest", {"Switchyard-Source": "GitHub"}), settings) == "hook:github"
    assert caller_identity(scope("/hooks/x", {"Switchyard-Source": "a b:c"}), settings) == "hook:invalid"
