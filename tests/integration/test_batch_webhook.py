"""The batch webhook: ``POST /hooks/{kind}`` with a JSON array body, against a real API (with webhook
secrets), Postgres, Redis and a control worker."""

from __future__ import annotations

import pytest

from switchyard import client, signing
from tests.integration.test_webhooks import DEFAULT_SECRET, assert_refused, hooks_api, job_count, post

pytestmark = pytest.mark.integration
__all__ = ["hooks_api"]  # the module-scoped API fixture with webhook secrets, shared with test_webhooks


# --- batches ----------------------------------------------------------------------------------------

def test_a_signed_array_is_a_batch_replayed_item_by_item(hooks_api, control_worker):
    body = b'[{"seconds": 0.05}, {"seconds": 0.1}, {"seconds": 0.05}]'
    header = signing.sign(DEFAULT_SECRET, body)
    first = post(hooks_api, body, secret=None, headers={signing.HEADER: header})
    assert first.status_code == 202, first.text
    data = first.json()["data"]
    assert len({d["job_id"] for d in data}) == 3 and all(d["created"] for d in data)
    replay = post(hooks_api, body, secret=None, headers={signing.HEADER: header}).json()["data"]
    assert [d["job_id"] for d in replay] == [d["job_id"] for d in data] and not any(d["created"] for d in replay)
    ended = [client.wait(d["job_id"], timeout=60) for d in data]
    assert [j.status.value for j in ended] == ["succeeded"] * 3
    assert {(j.producer, j.tenant) for j in ended} == {("webhook:default", "default")}


def test_a_batch_with_one_invalid_item_records_nothing(hooks_api):
    before = job_count()
    error = assert_refused(post(hooks_api, b'[{"seconds": 0.1}, {"seconds": -1}]'), 422, "invalid_params")
    assert [d["loc"][:3] for d in error["details"]] == [["body", "jobs", 1]]
    assert_refused(post(hooks_api, b"[]"), 422, "invalid_params")
    assert job_count() == before
