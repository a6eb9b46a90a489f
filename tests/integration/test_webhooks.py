"""Signed webhooks against a real uvicorn API, Postgres, Redis and a control worker.

The attack tests send what an attacker could: each is refused with its code, and the ledger holds
exactly as many jobs afterwards as before.
"""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from switchyard import client, signing
from switchyard.db import connection

pytestmark = pytest.mark.integration

DEFAULT_SECRET = "whsec-default-5e1f0c"
GITHUB_SECRET = "whsec-github-9b77aa"
MAX_BODY = 4096
PING = b'{"seconds": 0}'


def _start_api(process_factory, env: dict[str, str]):
    from switchyard.embedded import free_port, wait_for_port

    port = free_port()
    handle = process_factory("api-hooks", [sys.executable, "-m", "switchyard.cli", "api", "--port", str(port)],
                             env=env)
    wait_for_port(port, timeout=60)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), handle


@pytest.fixture(scope="module")
def hooks_api(stack, process_factory):
    """An API with a default secret, a per-source secret for ``github`` and a 4 KiB body limit."""
    http, handle = _start_api(process_factory, {
        "SWITCHYARD_WEBHOOK_SECRET": DEFAULT_SECRET,
        "SWITCHYARD_WEBHOOK_SECRET_GITHUB": GITHUB_SECRET,
        "SWITCHYARD_WEBHOOK_MAX_BODY": str(MAX_BODY),
    })
    http.handle = handle
    yield http
    http.close()
    handle.terminate()


def job_count() -> int:
    with connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"]


def post(http: httpx.Client, body: bytes, *, kind: str = "control.ping", secret: str | None = DEFAULT_SECRET,
         timestamp: int | None = None, headers: dict[str, str] | None = None, **kw) -> httpx.Response:
    all_headers = {"Content-Type": "application/json"}
    if secret is not None:
        all_headers[signing.HEADER] = signing.sign(secret, body, timestamp)
    all_headers.update(headers or {})
    return http.post(f"/hooks/{kind}", content=body, headers=all_headers, **kw)


def assert_refused(response: httpx.Response, code: int, error_type: str) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["message"]
    return error


# --- the good path ----------------------------------------------------------------------------------

def test_signed_webhook_creates_a_job_that_runs(hooks_api, control_worker):
    response = post(hooks_api, b'{"seconds": 0.2}')
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["created"] is True and body["status"] == "queued"
    assert body["status_url"].endswith(f"/jobs/{body['job_id']}")
    assert body["events_url"].endswith(f"/jobs/{body['job_id']}/events")
    final = client.wait(body["job_id"], timeout=30)
    assert final.status.value == "succeeded" and final.result["seconds"] == 0.2
    assert final.producer == "webhook:default"
    assert hooks_api.get(body["status_url"]).json()["status"] == "succeeded"


def test_idempotency_key_returns_the_same_job(hooks_api):
    key = f"delivery-{time.time_ns()}"
    first = post(hooks_api, PING, headers={"Idempotency-Key": key})
    # The producer's retry: new timestamp, new signature, same key.
    second = post(hooks_api, PING, headers={"Idempotency-Key": key}, timestamp=int(time.time()) + 1)
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert first.json()["created"] is True and second.json()["created"] is False
    assert second.headers["Idempotent-Replayed"] == "true"
    with connection() as conn:
        n = conn.execute("SELECT count(*) AS n FROM jobs WHERE idempotency_key = %s", (key,)).fetchone()["n"]
    assert n == 1


def test_an_exact_replay_inside_the_window_returns_the_first_job(hooks_api):
    body = b'{"seconds": 0.01}'
    headers = {signing.HEADER: signing.sign(DEFAULT_SECRET, body), "Content-Type": "application/json"}
    first = hooks_api.post("/hooks/control.ping", content=body, headers=headers)
    before = job_count()
    replay = hooks_api.post("/hooks/control.ping", content=body, headers=headers)
    assert first.status_code == replay.status_code == 202
    assert replay.json()["job_id"] == first.json()["job_id"] and replay.json()["created"] is False
    assert job_count() == before


def test_per_source_secrets(hooks_api):
    github = {"Switchyard-Source": "github"}
    ok = post(hooks_api, PING, secret=GITHUB_SECRET, headers=github)
    assert ok.status_code == 202, ok.text
    with connection() as conn:
        producer = conn.execute("SELECT producer FROM jobs WHERE id = %s", (ok.json()["job_id"],)).fetchone()
    assert producer["producer"] == "webhook:github"
    before = job_count()
    # The default secret does not open a source that has its own, nor the source's secret the default.
    assert_refused(post(hooks_api, PING, secret=DEFAULT_SECRET, headers=github), 401, "invalid_signature")
    assert_refused(post(hooks_api, PING, secret=GITHUB_SECRET), 401, "invalid_signature")
    assert_refused(post(hooks_api, PING, headers={"Switchyard-Source": "../etc"}), 401, "invalid_signature")
    assert job_count() == before


# --- attacks: each refused, no job --------------------------------------------------------------------

def test_bad_signature(hooks_api):
    before = job_count()
    assert_refused(post(hooks_api, PING, secret="guessed-secret"), 401, "invalid_signature")
    assert_refused(post(hooks_api, PING, secret=None), 401, "invalid_signature")  # unsigned
    assert_refused(post(hooks_api, PING, secret=None, headers={signing.HEADER: "t=1,v1=zz"}),
                   401, "invalid_signature")
    # Signed body A, sent body B.
    header = signing.sign(DEFAULT_SECRET, PING)
    assert_refused(post(hooks_api, b'{"seconds": 5}', secret=None, headers={signing.HEADER: header}),
                   401, "invalid_signature")
    assert job_count() == before


def test_stale_timestamp(hooks_api):
    before = job_count()
    error = assert_refused(post(hooks_api, PING, timestamp=int(time.time()) - 301), 401, "invalid_signature")
    assert "tolerance" in error["message"]
    assert_refused(post(hooks_api, PING, timestamp=int(time.time()) + 3600), 401, "invalid_signature")
    assert job_count() == before


def test_replayed_body_with_new_timestamp_but_old_signature(hooks_api):
    old = signing.sign(DEFAULT_SECRET, PING, int(time.time()) - 3600)
    forged = f"t={int(time.time())},v1={old.split('v1=', 1)[1]}"
    before = job_count()
    error = assert_refused(post(hooks_api, PING, secret=None, headers={signing.HEADER: forged}),
                           401, "invalid_signature")
    assert "does not match" in error["message"]
    assert job_count() == before


def test_oversized_body(hooks_api):
    big = b'{"seconds": 0, "pad": "' + b"x" * MAX_BODY + b'"}'
    before = job_count()
    # Correctly signed, so only the size can refuse it; with and without a Content-Length.
    assert_refused(post(hooks_api, big), 413, "payload_too_large")

    def chunks():
        for i in range(0, len(big), 1024):
            yield big[i:i + 1024]

    headers = {signing.HEADER: signing.sign(DEFAULT_SECRET, big), "Content-Type": "application/json"}
    response = hooks_api.post("/hooks/control.ping", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers  # really sent chunked
    assert_refused(response, 413, "payload_too_large")
    assert job_count() == before


def test_malformed_json(hooks_api):
    before = job_count()
    error = assert_refused(post(hooks_api, b'{"seconds": '), 422, "invalid_json")
    assert error["details"][0]["loc"] == ["body"]
    assert_refused(post(hooks_api, b"[1, 2]"), 422, "invalid_params")
    assert_refused(post(hooks_api, b"\xff\xfe"), 422, "invalid_json")
    # A nesting bomb meets the JSON depth limit every route has (docs/security-inputs.md).
    bomb = assert_refused(post(hooks_api, b"[" * 2000 + b"]" * 2000), 422, "invalid_request")
    assert bomb["details"][0]["type"] == "json_too_deep"
    assert job_count() == before


def test_payload_that_fails_the_schema_lists_field_errors(hooks_api):
    before = job_count()
    error = assert_refused(post(hooks_api, b'{"seconds": -1, "extra": 1}'), 422, "invalid_params")
    locs = sorted(tuple(d["loc"]) for d in error["details"])
    assert locs == [("body", "extra"), ("body", "seconds")]
    assert job_count() == before


def test_unknown_kind(hooks_api):
    before = job_count()
    assert_refused(post(hooks_api, PING, kind="control.nope"), 404, "unknown_kind")
    assert_refused(post(hooks_api, PING, kind="rm -rf"), 404, "unknown_kind")
    assert job_count() == before


def test_secrets_never_reach_the_log(hooks_api):
    post(hooks_api, PING, secret="guessed-secret")
    post(hooks_api, PING, headers={"Switchyard-Source": "github"})
    log = hooks_api.handle.log()
    assert "webhook refused" in log  # the refusals are logged...
    assert DEFAULT_SECRET not in log and GITHUB_SECRET not in log  # ...without the secrets


def test_without_any_secret_configured_every_webhook_is_refused(stack, process_factory):
    http, handle = _start_api(process_factory, {"SWITCHYARD_WEBHOOK_SECRET": ""})
    try:
        before = job_count()
        error = assert_refused(post(http, PING, secret="anything"), 401, "invalid_signature")
        assert "no webhook secret" in error["message"]
        assert_refused(post(http, PING, secret=None), 401, "invalid_signature")
        assert job_count() == before
    finally:
        http.close()
        handle.terminate()
