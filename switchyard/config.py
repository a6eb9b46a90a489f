"""Configuration: environment variables prefixed ``SWITCHYARD_`` (see README, "Configuration").

Every process reads the same variables, so a worker started by hand in another shell reaches the same
stack as ``switchyard dev`` after ``set -a; . .switchyard/dev.env``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    # Where unset, `switchyard dev` and the tests start embedded servers and export their URLs.
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = Field(default=None, description="defaults to redis_url")

    api_host: str = "127.0.0.1"
    api_port: int = 8700
    state_dir: Path = Path("./.switchyard")

    webhook_secret: SecretStr | None = None
    webhook_tolerance_s: int = 300
    webhook_max_body: int = 1_048_576
    api_keys: SecretStr | None = Field(default=None, description="comma-separated key:tenant pairs")
    # The tenant of jobs from a webhook source or trigger-stream source (per source: *_TENANT_<SOURCE>).
    webhook_tenant: str = "default"
    trigger_tenant: str = "default"

    # Leases: a running job's worker renews its lease every lease_s/3 seconds; the control pool's
    # reaper re-queues a job whose lease has expired (its worker died).
    lease_s: float = 30.0
    reaper_interval_s: float = 2.0
    dispatch_grace_s: float = 30.0

    # Agent graphs by name, added to or overriding the defaults (switchyard.agents.graph_catalog), as
    # LangGraph's langgraph.json names them: {"name": "module:build_fn"} or {"name": {"builder":
    # "module:build_fn", "description": "..."}}; e.g. SWITCHYARD_GRAPHS='{"mine": "my_pkg.g:build_mine"}'.
    graphs: dict[str, str | dict[str, str]] = Field(default_factory=dict)

    # Faults (RELIABILITY.md). A queued job nobody claimed within requeue_after_s is sent again (its
    # message may have died with the broker), backing off to 16x; a job interrupted by a lost connection
    # to Redis, Postgres or the broker is retried up to max_infra_retries times, waiting
    # infra_retry_backoff_s * 2**n; a job started max_attempts times (its worker killed again and
    # again) fails as too_many_attempts. Runner ledger writes retry for up to ledger_retry_s.
    requeue_after_s: float = 60.0
    max_infra_retries: int = 5
    infra_retry_backoff_s: float = 1.0
    max_attempts: int = 10
    ledger_retry_s: float = 60.0
    # Backpressure: at most this many queued jobs per queue (0 = unlimited; per queue:
    # QUEUE_MAX_DEPTH_<QUEUE>); producers past it get QueueFullError / HTTP 429 with Retry-After.
    queue_max_depth: int = 0
    queue_full_retry_after_s: int = 5
    # A Server-Sent Events client that has not taken a write for this long (it stopped reading: a full
    # TCP window) is dropped; it resumes with Last-Event-ID (switchyard/api/sse.py).
    sse_send_timeout_s: float = 30.0

    # Event replay log in Redis: trimmed to this many entries per job, and expires after the TTL.
    event_log_maxlen: int = 100_000
    event_log_ttl_s: int = 7 * 24 * 3600

    callback_max_retries: int = 8

    # Inputs a caller names (docs/security-inputs.md). File paths are read only under these roots
    # (comma-separated directories or fsspec URL prefixes); uploads are named by file id, not path.
    file_roots: str = ""
    # One egress policy for caller-named URLs (ingest URLs, inline model base_urls, callbacks): when set,
    # only these hosts (example.com, *.example.com) or URL prefixes (https://host[:port]/path/) may be
    # named; private, loopback and link-local addresses need allow_private or an explicit entry.
    egress_allow: str = ""
    egress_allow_private: bool = False
    egress_max_bytes: int = 64 * 1024 * 1024
    egress_timeout_s: float = 30.0
    egress_max_redirects: int = 5

    # HTTP API limits, for every route (ASGI middleware): body bytes (multipart uploads to /v1/files
    # get the fine-tune pool's max_file_bytes instead), JSON nesting depth, and a token bucket per API
    # key / webhook source / client address in Redis (rate_limit_per_s = 0 turns it off).
    api_max_body: int = 1_048_576
    api_max_json_depth: int = 64
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 500
    # When set, GET /metrics wants "Authorization: Bearer <key>".
    metrics_key: SecretStr | None = None
    log_level: str = "INFO"

    def webhook_secret_for(self, source: str | None) -> str | None:
        """The HMAC secret for a webhook source (``WEBHOOK_SECRET_<SOURCE>``), else the default one."""
        per_source = per_name("WEBHOOK_SECRET", source)
        if per_source:
            return per_source
        return self.webhook_secret.get_secret_value() if self.webhook_secret else None

    def webhook_tenant_for(self, source: str | None) -> str:
        """The tenant a webhook source's jobs run for: ``WEBHOOK_TENANT_<SOURCE>``, else
        ``WEBHOOK_TENANT``. The signature proves the source; configuration, never the body, names the tenant."""
        return per_name("WEBHOOK_TENANT", source) or self.webhook_tenant

    def trigger_tenant_for(self, source: str | None) -> str:
        """The tenant of a trigger-stream entry from ``source``: ``TRIGGER_TENANT_<SOURCE>``, else
        ``TRIGGER_TENANT``."""
        return per_name("TRIGGER_TENANT", source) or self.trigger_tenant

    def api_key_tenants(self) -> dict[str, str]:
        """``{api_key: tenant}`` from ``API_KEYS``; empty means the API is open on loopback only."""
        if not self.api_keys:
            return {}
        pairs = {}
        for item in self.api_keys.get_secret_value().split(","):
            item = item.strip()
            if item:
                key, _, tenant = item.partition(":")
                pairs[key] = tenant or "default"
        return pairs

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    def masked(self) -> dict:
        """The effective configuration as JSON-ready data, secrets and URL passwords masked."""
        data = self.model_dump(mode="json")
        for key in ("webhook_secret", "api_keys", "metrics_key"):
            data[key] = "***" if data.get(key) else None
        for key in ("database_url", "redis_url", "broker_url"):
            data[key] = _mask_url(data.get(key))
        data["effective_broker_url"] = _mask_url(self.effective_broker_url)
        data["webhook_sources"] = sorted(
            k.removeprefix("SWITCHYARD_WEBHOOK_SECRET_").lower()
            for k in os.environ
            if k.startswith("SWITCHYARD_WEBHOOK_SECRET_")
        )
        return data


def per_name(variable: str, name: str | None) -> str | None:
    """``SWITCHYARD_<VARIABLE>_<NAME>`` (a per-source or per-queue override), if set."""
    if not name:
        return None
    return os.environ.get(f"SWITCHYARD_{variable}_{name.upper().replace('-', '_')}") or None


def _mask_url(url: str | None) -> str | None:
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Re-read the environment (tests and `switchyard dev` change it after start)."""
    get_settings.cache_clear()
    return get_settings()
