"""A short-lived cache of rendered shop pages for anonymous customers of public shops.

Keys carry the organization's catalog version, which every catalog or shop change bumps in the
same transaction (:func:`comptoir.storefront.models.bump_catalog_version`), so an edit shows at
once. The time-to-live only bounds how long stock counts ("sold out") may lag behind carts.
Staff, signed-in people, unlocked password shops and searches are never cached.

Redis holds the pages when configured (shared by every web process); otherwise a small
in-process dictionary does. A cache that fails is skipped, never an error.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from comptoir.platform.db import db
from comptoir.platform.settings import current_settings
from comptoir.storefront.models import CatalogVersion

logger = logging.getLogger(__name__)

CACHE_EXTENSION = "comptoir_shop_page_cache"
TTL_CONFIG_KEY = "COMPTOIR_SHOP_CACHE_SECONDS"
DEFAULT_TTL_SECONDS = 10
KEY_PREFIX = "comptoir:shop-page:"


class PageCache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: int) -> None: ...


class RedisPageCache:
    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)

    def get(self, key: str) -> bytes | None:
        try:
            value = self.redis.get(KEY_PREFIX + key)
        except RedisError:
            logger.warning("shop page cache unavailable", exc_info=True)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            self.redis.set(KEY_PREFIX + key, value, ex=ttl)
        except RedisError:
            logger.warning("shop page cache unavailable", exc_info=True)


class MemoryPageCache:
    MAX_ENTRIES = 512

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl, value)


def ttl_seconds() -> int:
    return int(current_app.config.get(TTL_CONFIG_KEY, DEFAULT_TTL_SECONDS))


def page_cache() -> PageCache:
    cache: PageCache | None = current_app.extensions.get(CACHE_EXTENSION)
    if cache is None:
        redis_url = current_settings().redis_url
        cache = RedisPageCache(redis_url) if redis_url else MemoryPageCache()
        current_app.extensions[CACHE_EXTENSION] = cache
    return cache


def catalog_version() -> int:
    """The catalog version of the organization in scope (1 before any change)."""
    version = db.session.execute(sa.select(CatalogVersion.version)).scalar_one_or_none()
    return int(version or 1)
