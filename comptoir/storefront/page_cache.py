"""A short-lived cache of shop pages for anonymous customers of public shops.

What is cached: the whole response (status, headers, body) of ``GET /o/<org>/<shop>/`` with at
most ``category`` and ``page`` in the query, for a visitor who is not signed in (no user, no
"remember me" cookie, no API key, no shop access token, no flashed message). The key also holds
the visitor's chosen language (else the organization's default). Staff, signed-in people,
password and staff-only shops, searches and language switches are never cached.

How it stays right: every catalog or shop change bumps the organization's catalog version in the
same transaction (:func:`comptoir.storefront.models.bump_catalog_version`); after the commit the
new version is copied to the cache store, and an entry only answers while its version is the
current one. So an edit shows at once; the time-to-live (``COMPTOIR_SHOP_CACHE_SECONDS``, 10 s by
default) bounds what no catalog change announces: stock taken by carts ("sold out"), and an
organization being suspended.

Why a WSGI middleware: a hit is answered before Flask resolves the organization, so it costs two
Redis reads and no SQL. A miss goes through the app as usual; the view marks the response as
storable and the middleware keeps it. Redis holds the entries when configured (shared by every
web process); otherwise a small in-process dictionary does. A cache that fails is skipped.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import parse_qs

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from itsdangerous import BadSignature
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.http import parse_cookie

from comptoir.platform.db import db
from comptoir.platform.settings import current_settings

logger = logging.getLogger(__name__)

CACHE_EXTENSION = "comptoir_shop_page_cache"
TTL_CONFIG_KEY = "COMPTOIR_SHOP_CACHE_SECONDS"
DEFAULT_TTL_SECONDS = 10
KEY_PREFIX = "comptoir:shop-page:"
# Versions outlive pages by far; a lost version only costs a miss (the database has it).
VERSION_TTL_SECONDS = 7 * 24 * 3600
CANDIDATE_KEY = "comptoir.shop_page_cache.key"
STORE_KEY = "comptoir.shop_page_cache.version"
SHOP_PATH = re.compile(r"^/o/(?P<org>[a-z0-9-]{1,63})/(?P<shop>[a-z0-9-]{1,63})/$")
LOCALES = ("fr", "en")
# Answers that must not be replayed to another visitor.
UNSHAREABLE_HEADERS = frozenset({"set-cookie", "x-request-id", "date"})
_SET_IF_GREATER = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def page_key(candidate: str) -> str:
    return f"{KEY_PREFIX}p:{candidate}"


def version_key(org_slug: str) -> str:
    return f"{KEY_PREFIX}v:{org_slug}"


class PageCache(Protocol):
    def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    def set(self, key: str, value: bytes, ttl: int) -> None: ...

    def raise_version(self, org_slug: str, version: int) -> None: ...


class RedisPageCache:
    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self._raise = self.redis.register_script(_SET_IF_GREATER)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        try:
            values = self.redis.mget(keys)
        except RedisError:
            logger.warning("shop page cache unavailable", exc_info=True)
            return [None] * len(keys)
        return [value if isinstance(value, bytes) else None for value in values]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            self.redis.set(key, value, ex=ttl)
        except RedisError:
            logger.warning("shop page cache unavailable", exc_info=True)

    def raise_version(self, org_slug: str, version: int) -> None:
        try:
            self._raise(keys=[version_key(org_slug)], args=[version, VERSION_TTL_SECONDS])
        except RedisError:
            logger.warning("shop page cache unavailable", exc_info=True)


class MemoryPageCache:
    """The embedded default's store: one process, a bounded dictionary."""

    MAX_ENTRIES = 512

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        with self._lock:
            found = [self._entries.get(key) for key in keys]
        return [entry[1] if entry is not None and entry[0] >= now else None for entry in found]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl, value)

    def raise_version(self, org_slug: str, version: int) -> None:
        key = version_key(org_slug)
        with self._lock:
            current = self._entries.get(key)
            if current is None or int(current[1]) < version:
                self._entries[key] = (time.monotonic() + VERSION_TTL_SECONDS, str(version).encode())


def ttl_seconds(app: Flask | None = None) -> int:
    return int((app or current_app).config.get(TTL_CONFIG_KEY, DEFAULT_TTL_SECONDS))


def page_cache(app: Flask | None = None) -> PageCache:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache: PageCache | None = app.extensions.get(CACHE_EXTENSION)
    if cache is None:
        with app.app_context():
            redis_url = current_settings().redis_url
        cache = RedisPageCache(redis_url) if redis_url else MemoryPageCache()
        app.extensions[CACHE_EXTENSION] = cache
    return cache


# --------------------------------------------------------------------------- which requests


def _session_data(raw: str, app: Flask) -> dict[str, Any] | None:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    if serializer is None:
        return None
    try:
        data = serializer.loads(raw, max_age=int(app.permanent_session_lifetime.total_seconds()))
    except BadSignature:
        return {}  # Flask starts an empty session for it
    return data if isinstance(data, dict) else None


def _visitor_locale(environ: dict[str, Any], app: Flask) -> str | None:
    """The language a cookie chose ("" for the organization's default), or None: not cacheable."""
    cookies = parse_cookie(environ.get("HTTP_COOKIE", ""))
    if app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in cookies:
        return None
    raw = cookies.get(app.config.get("SESSION_COOKIE_NAME", "session"))
    data = {} if raw is None else _session_data(raw, app)
    if data is None or "_user_id" in data or "_flashes" in data:
        return None
    locale = data.get("locale")
    return locale if locale in LOCALES else ""


def _page_arguments(environ: dict[str, Any]) -> tuple[int, int] | None:
    """``category`` and ``page`` when the query holds nothing else."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    category = query.get("category", ["0"])[0]
    page = query.get("page", ["1"])[0]
    valid = (
        not set(query) - {"category", "page"}
        and category.isdigit()
        and page.isdigit()
        and len(category) < 12
        and len(page) < 7
    )
    return (int(category), int(page) or 1) if valid else None


def candidate_key(environ: dict[str, Any], app: Flask) -> str | None:
    """The cache key of this request if its answer may come from (or go to) the cache."""
    if environ.get("REQUEST_METHOD") != "GET" or ttl_seconds(app) <= 0:
        return None
    match = SHOP_PATH.match(environ.get("PATH_INFO", ""))
    if match is None or environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_SHOP_ACCESS"):
        return None
    arguments = _page_arguments(environ)
    locale = _visitor_locale(environ, app) if arguments is not None else None
    if arguments is None or locale is None:
        return None
    category, page = arguments
    return f"{match['org']}:{match['shop']}:{locale or '-'}:{category}:{page}"


# --------------------------------------------------------------------------- entries


def _encode(version: int, status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = json.dumps({"v": version, "s": status, "h": headers}, separators=(",", ":"))
    return head.encode() + b"\n" + body


def _decode(value: bytes) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
    head, separator, body = value.partition(b"\n")
    if not separator:
        return None
    try:
        meta = json.loads(head)
        return int(meta["v"]), str(meta["s"]), [(str(k), str(v)) for k, v in meta["h"]], body
    except (ValueError, KeyError, TypeError):
        return None


class ShopPageCacheMiddleware:
    """Answers cached shop pages before the app runs, and keeps the pages the app marks."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Any]) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        key = candidate_key(environ, self.app)
        if key is None:
            return self.wsgi_app(environ, start_response)
        org_slug = key.split(":", 1)[0]
        cache = page_cache(self.app)
        version, entry = cache.get_many([version_key(org_slug), page_key(key)])
        if version is not None and entry is not None:
            decoded = _decode(entry)
            if decoded is not None and str(decoded[0]).encode() == version:
                _version, status, headers, body = decoded
                request_id = secrets.token_hex(8)
                start_response(status, [*headers, ("X-Request-ID", request_id)])
                return [body]
        environ[CANDIDATE_KEY] = key
        return self._through_app(environ, start_response, cache, key)

    def _through_app(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        cache: PageCache,
        key: str,
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return start_response(status, headers, exc_info) if exc_info else None

        app_iter = self.wsgi_app(environ, capture)
        try:
            body = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        status, headers = captured["status"], captured["headers"]
        start_response(status, headers)
        version = environ.get(STORE_KEY)
        storable = status.startswith("200") and not any(
            name.lower() == "set-cookie" for name, _value in headers
        )
        if version is not None and storable:
            kept = [(n, v) for n, v in headers if n.lower() not in UNSHAREABLE_HEADERS]
            cache.set(page_key(key), _encode(version, status, kept, body), ttl_seconds(self.app))
        return [body]


def install(app: Flask) -> None:
    app.wsgi_app = ShopPageCacheMiddleware(app, app.wsgi_app)  # type: ignore[method-assign]


# --------------------------------------------------------------------------- views and commits


def current_version(organization_id: int, org_slug: str) -> int:
    """The organization's catalog version: from the cache store, else the database (and kept)."""
    cache = page_cache()
    [stored] = cache.get_many([version_key(org_slug)])
    if stored is not None and stored.isdigit():
        return int(stored)
    from comptoir.storefront.models import CatalogVersion

    version = db.session.execute(
        sa.select(CatalogVersion.version).where(CatalogVersion.organization_id == organization_id)
    ).scalar_one_or_none()
    version = int(version or 1)
    cache.raise_version(org_slug, version)
    return version


def is_candidate(environ: dict[str, Any]) -> bool:
    return CANDIDATE_KEY in environ


def keep_response(environ: dict[str, Any], version: int) -> None:
    """Let the middleware store this response, rendered from catalog ``version``."""
    environ[STORE_KEY] = version


def publish_versions(versions: dict[str, int]) -> None:
    """After a commit: make the new catalog versions current for cached pages."""
    if not versions or not has_app_context():
        return
    cache = page_cache()
    for org_slug, version in versions.items():
        cache.raise_version(org_slug, version)
