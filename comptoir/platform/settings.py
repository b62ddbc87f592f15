"""Typed settings, read once from the environment.

Every knob Comptoir has is a field here, so the README's configuration table and this module are
the same list. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """The configuration cannot run; the message says which variable to set."""


PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INSTANCE_PATH = PROJECT_ROOT / "instance"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, *, default: bool) -> bool:
    raw = _env(name)
    if not raw:
        return default
    return raw.lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, *, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        message = f"{name} must be a whole number, not {raw!r}."
        raise SettingsError(message) from None


@dataclass(frozen=True)
class Settings:
    env: Environment = Environment.DEVELOPMENT
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    mail_url: str = ""
    mail_from: str = "Comptoir <no-reply@comptoir.localhost>"
    sentry_dsn: str = ""
    base_url: str = "http://localhost:5000"
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    # Where the Stripe API is reached; empty means api.stripe.com with a real key, else the
    # Stripe fake on loopback ("simulated payments").
    stripe_api_base: str = ""
    instance_path: Path = DEFAULT_INSTANCE_PATH
    # Flask-Limiter expressions for the endpoints that guess secrets.
    login_rate_limit: str = "10 per minute"
    log_json: bool = False
    # How many reverse proxies (load balancer, ingress) sit in front and set X-Forwarded-*:
    # the client address that rate limits count is read through exactly that many.
    trusted_proxies: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        try:
            env = Environment(_env("COMPTOIR_ENV", "development"))
        except ValueError as error:
            allowed = ", ".join(e.value for e in Environment)
            message = f"COMPTOIR_ENV must be one of: {allowed}."
            raise SettingsError(message) from error
        instance_path = Path(_env("COMPTOIR_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH)
        return cls(
            env=env,
            database_url=_env("COMPTOIR_DATABASE_URL"),
            redis_url=_env("COMPTOIR_REDIS_URL"),
            secret_key=_env("COMPTOIR_SECRET_KEY"),
            mail_url=_env("COMPTOIR_MAIL_URL"),
            mail_from=_env("COMPTOIR_MAIL_FROM") or cls.mail_from,
            sentry_dsn=_env("COMPTOIR_SENTRY_DSN"),
            base_url=_env("COMPTOIR_BASE_URL") or cls.base_url,
            stripe_secret_key=_env("COMPTOIR_STRIPE_SECRET_KEY"),
            stripe_publishable_key=_env("COMPTOIR_STRIPE_PUBLISHABLE_KEY"),
            stripe_webhook_secret=_env("COMPTOIR_STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=_env("COMPTOIR_STRIPE_API_BASE"),
            instance_path=instance_path,
            login_rate_limit=_env("COMPTOIR_LOGIN_RATE_LIMIT") or cls.login_rate_limit,
            log_json=_env_bool("COMPTOIR_LOG_JSON", default=env is Environment.PRODUCTION),
            trusted_proxies=_env_int("COMPTOIR_TRUSTED_PROXIES", default=0),
        )

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def effective_database_url(self) -> str:
        """The embedded default is a SQLite file in the instance folder."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.instance_path / 'comptoir.sqlite3'}"

    @property
    def effective_mail_url(self) -> str:
        """Outside production, mail lands in the dev mailbox unless a transport is named."""
        if self.mail_url:
            return self.mail_url
        return "smtp://localhost:25" if self.is_production else "dev://"

    @property
    def rate_limit_storage_url(self) -> str:
        return self.redis_url or "memory://"

    def validate(self) -> None:
        """Refuse configurations that would run insecurely; say what to set."""
        if self.is_production:
            if len(self.secret_key) < 32:
                message = (
                    "COMPTOIR_SECRET_KEY must be set to a random string of at least 32 characters "
                    "in production (for example: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')."
                )
                raise SettingsError(message)
            if not self.database_url:
                message = "COMPTOIR_DATABASE_URL must point at PostgreSQL in production."
                raise SettingsError(message)

    def flask_config(self) -> dict[str, object]:
        secret = self.secret_key or "comptoir-development-only-secret-key-not-for-production"
        config: dict[str, object] = {
            "SECRET_KEY": secret,
            "TESTING": self.env is Environment.TEST,
            "SQLALCHEMY_DATABASE_URI": self.effective_database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(self.effective_database_url),
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.is_production,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SECURE": self.is_production,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "PREFERRED_URL_SCHEME": "https" if self.is_production else "http",
            "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
            "WTF_CSRF_TIME_LIMIT": None,
            "BABEL_DEFAULT_LOCALE": "en",
            "BABEL_DEFAULT_TIMEZONE": "America/Toronto",
            "RATELIMIT_STORAGE_URI": self.rate_limit_storage_url,
            "RATELIMIT_HEADERS_ENABLED": True,
            "API_TITLE": "Comptoir",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.1.0",
            "OPENAPI_URL_PREFIX": "/api/v1",
            "OPENAPI_JSON_PATH": "openapi.json",
        }
        config.update(self.extra)
        return config


def normalize_database_url(url: str) -> str:
    """Accept the ``postgres://`` and ``postgresql://`` spellings and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # The embedded default serves requests and the in-process job thread from one file.
        return {"connect_args": {"timeout": 15, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}


SETTINGS_EXTENSION = "comptoir_settings"


def current_settings() -> Settings:
    """The settings of the app in context (set by ``create_app``)."""
    from flask import current_app

    settings: Settings = current_app.extensions[SETTINGS_EXTENSION]
    return settings
