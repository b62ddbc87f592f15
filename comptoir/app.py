"""The composition root: the one module that knows every layer and wires them together.

``create_app`` has no side effects beyond building the app object: it runs no migration, opens no
connection and writes no file. The database, Redis and mail are touched on first use.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context, request
from flask_talisman import Talisman
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from comptoir.platform import outbox
from comptoir.platform.db import db
from comptoir.platform.errors import register_error_handlers
from comptoir.platform.extensions import api, babel, csrf, limiter, login_manager, migrate
from comptoir.platform.i18n import remember_locale_choice, select_locale
from comptoir.platform.observability import configure_logging, init_request_logging, init_sentry
from comptoir.platform.queue import InProcessDispatcher, RQDispatcher
from comptoir.platform.settings import SETTINGS_EXTENSION, Settings
from comptoir.platform.tenancy import install_tenancy_guard, leave_scope
from comptoir.tenants.auth import init_auth
from comptoir.tenants.context import CustomDomainMiddleware, register_suspended_handler

# Paths that stay the platform's own on an organization's custom domain.
PLATFORM_PATHS = (
    "/static",
    "/login",
    "/logout",
    "/password",
    "/invitations",
    "/account",
    "/api/",
    "/webhooks/",
    "/healthz",
    "/readyz",
    "/operators",
    "/_dev/",
    "/o/",
)

# Same-origin, plus what Stripe.js needs for the card page's Payment Element: its script and
# frames from js.stripe.com, 3-D Secure challenges framed from hooks.stripe.com, and its calls to
# api.stripe.com (Stripe's own list). The card form stays in Stripe's frames, never in our page.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": ["'self'", "data:"],
    "style-src": "'self'",
    "script-src": ["'self'", "https://js.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["'self'", "https://api.stripe.com"],
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'self'",
}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.validate()

    app = Flask(
        "comptoir",
        instance_path=str(settings.instance_path),
        static_folder="platform/static",
        template_folder="platform/templates",
    )
    app.config.from_mapping(settings.flask_config())
    app.extensions[SETTINGS_EXTENSION] = settings

    configure_logging(settings)
    init_sentry(settings)
    _init_extensions(app, settings)
    _init_jobs(app, settings)
    _register_blueprints(app)
    _connect_signals()
    _register_cli(app)
    _register_request_hooks(app)
    register_error_handlers(app)
    register_suspended_handler(app)
    app.wsgi_app = CustomDomainMiddleware(app, PLATFORM_PATHS)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # Outermost: the custom-domain lookup and the rate limits see the real host and client.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    return app


def _init_extensions(app: Flask, settings: Settings) -> None:
    db.init_app(app)
    # On the Session class, not one factory: every ORM session in the process is guarded.
    install_tenancy_guard(Session)
    outbox.install_outbox_hooks(Session)
    migrate.init_app(app, db, directory=str(settings_migrations_directory()))
    login_manager.init_app(app)
    init_auth()
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)
    api.init_app(app)
    Talisman(
        app,
        force_https=settings.is_production,
        strict_transport_security=settings.is_production,
        session_cookie_secure=settings.is_production,
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="same-origin",
        frame_options="DENY",
    )


def settings_migrations_directory() -> Any:
    from comptoir.platform.settings import PROJECT_ROOT

    return PROJECT_ROOT / "migrations"


def _init_jobs(app: Flask, settings: Settings) -> None:
    import comptoir.billing.stripe_connect
    import comptoir.billing.stripe_events
    import comptoir.billing.stripe_models
    import comptoir.billing.stripe_payments
    import comptoir.billing.stripe_refunds
    import comptoir.billing.stripe_terminal_payments
    import comptoir.billing.taxes
    import comptoir.jobs  # noqa: F401 - registers every job name with the outbox

    if settings.redis_url:
        app.extensions[outbox.DISPATCHER_EXTENSION] = RQDispatcher(settings.redis_url)
    else:
        app.extensions[outbox.DISPATCHER_EXTENSION] = InProcessDispatcher(app)


def _register_blueprints(app: Flask) -> None:  # noqa: PLR0915 - one line per blueprint
    from comptoir.billing import invoice_preview
    from comptoir.billing.views import admin as billing_admin
    from comptoir.billing.views import api as billing_api
    from comptoir.billing.views import operators as billing_operators
    from comptoir.billing.views import shop as billing_shop
    from comptoir.billing.views import stripe_admin as billing_stripe_admin
    from comptoir.billing.views import stripe_refunds as billing_stripe_refunds
    from comptoir.billing.views import terminal as billing_terminal
    from comptoir.billing.views import terminal_api as billing_terminal_api
    from comptoir.billing.views import webhooks as billing_webhooks
    from comptoir.jobs.views import operators as jobs_operators
    from comptoir.platform.views import dev_mail, health
    from comptoir.storefront.views import admin as storefront_admin
    from comptoir.storefront.views import api as storefront_api
    from comptoir.storefront.views import card as storefront_card
    from comptoir.storefront.views import cart as storefront_cart
    from comptoir.storefront.views import cart_api as storefront_cart_api
    from comptoir.storefront.views import checkout as storefront_checkout
    from comptoir.storefront.views import checkout_admin as storefront_checkout_admin
    from comptoir.storefront.views import checkout_api as storefront_checkout_api
    from comptoir.storefront.views import shop as storefront_shop
    from comptoir.tenants.views import accounts as tenants_accounts
    from comptoir.tenants.views import admin as tenants_admin
    from comptoir.tenants.views import api as tenants_api
    from comptoir.tenants.views import operators as tenants_operators

    app.register_blueprint(health.blueprint)
    app.register_blueprint(tenants_accounts.blueprint)
    app.register_blueprint(tenants_operators.blueprint, url_prefix="/operators")
    app.register_blueprint(jobs_operators.blueprint, url_prefix="/operators/jobs")
    app.register_blueprint(billing_operators.blueprint, url_prefix="/operators/billing")
    app.register_blueprint(tenants_admin.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(storefront_admin.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(storefront_shop.blueprint, url_prefix="/o/<org_slug>")
    app.register_blueprint(storefront_cart.blueprint, url_prefix="/o/<org_slug>")
    app.register_blueprint(storefront_checkout.blueprint, url_prefix="/o/<org_slug>")
    app.register_blueprint(storefront_checkout_admin.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(invoice_preview.templates_blueprint)
    app.register_blueprint(billing_admin.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(billing_stripe_admin.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(billing_terminal.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(billing_stripe_refunds.blueprint, url_prefix="/o/<org_slug>/admin")
    app.register_blueprint(billing_shop.blueprint, url_prefix="/o/<org_slug>")
    app.register_blueprint(storefront_card.blueprint, url_prefix="/o/<org_slug>")
    app.register_blueprint(billing_webhooks.blueprint)
    api.register_blueprint(tenants_api.blueprint)
    api.register_blueprint(tenants_api.settings_blueprint)
    api.register_blueprint(billing_api.blueprint)
    api.register_blueprint(billing_terminal_api.blueprint)
    api.register_blueprint(storefront_cart_api.blueprint)
    api.register_blueprint(storefront_checkout_api.blueprint)
    api.register_blueprint(storefront_api.blueprint)
    if not _is_production(app):
        app.register_blueprint(dev_mail.blueprint, url_prefix="/_dev/mail")


def _connect_signals() -> None:
    # Billing announces refunds and cancellations; the storefront gives the units back.
    from comptoir.storefront.checkout import connect_signals

    connect_signals()


def _is_production(app: Flask) -> bool:
    settings: Settings = app.extensions[SETTINGS_EXTENSION]
    return settings.is_production


def _register_cli(app: Flask) -> None:
    from comptoir.billing.stripe_fake.cli import stripe_fake_command
    from comptoir.demo import seed_demo_command
    from comptoir.jobs.cli import scheduler_command, worker_command
    from comptoir.tenants.cli import (
        create_api_key_command,
        create_operator_command,
        create_organization_command,
    )

    for command in (
        create_operator_command,
        create_organization_command,
        create_api_key_command,
        worker_command,
        scheduler_command,
        seed_demo_command,
        stripe_fake_command,
    ):
        app.cli.add_command(command)


def _register_request_hooks(app: Flask) -> None:
    init_request_logging(app)
    app.before_request(remember_locale_choice)

    @app.teardown_request
    def leave_tenant_scope(error: BaseException | None) -> None:
        # Blueprints enter the organization's scope when they resolve it from the URL.
        token = g.pop("tenant_scope_token", None)
        if token is not None:
            leave_scope(token)

    @app.context_processor
    def template_globals() -> dict[str, Any]:
        return {
            "current_locale": select_locale(),
            "organization": g.get("organization"),
            # Jobs render documents (invoice PDFs) outside any request.
            "request_path": request.path if has_request_context() else "",
        }
