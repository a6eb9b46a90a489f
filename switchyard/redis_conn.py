"""One Redis client per process and URL (redis-py's client is thread-safe and pools connections)."""

from __future__ import annotations

import os
import threading

import redis

from switchyard.config import get_settings
from switchyard.errors import ConfigurationError

_clients: dict[tuple[int, str], redis.Redis] = {}
_lock = threading.Lock()


def redis_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise ConfigurationError(
            "SWITCHYARD_REDIS_URL is not set (run `switchyard dev`, or `set -a; . .switchyard/dev.env`)"
        )
    return url


def get_redis(url: str | None = None) -> redis.Redis:
    url = url or redis_url()
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, health_check_interval=30)
                _clients[key] = client
    return client
