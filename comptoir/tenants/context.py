"""The organization of a request: from ``/o/<slug>/…`` or from a custom domain.

Blueprints under an organization call :func:`install_organization_url_handling`; it resolves the
slug once per request, refuses unknown (404) and suspended organizations, enters the tenant scope
(left again by the app's teardown hook) and fills ``org_slug`` into ``url_for`` automatically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, g, render_template
from flask_login import current_user

from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.observability import bind_organization
from comptoir.platform.tenancy import Scope, enter_scope, unscoped
from comptoir.tenants.models import CustomDomain, Membership, Organization, Role


class OrganizationSuspendedError(Exception):
    def __init__(self, organization: Organization) -> None:
        super().__init__(organization.slug)
        self.organization = organization


def find_organization(slug: str) -> Organization | None:
    return db.session.execute(
        sa.select(Organization).where(Organization.slug == slug.lower())
    ).scalar_one_or_none()


def bind_request_organization(organization: Organization) -> None:
    """Make ``organization`` the request's tenant (scope, ``g``, logs, Sentry tag)."""
    previous = g.pop("tenant_scope_token", None)
    if previous is not None:
        from comptoir.platform.tenancy import leave_scope

        leave_scope(previous)
    g.organization = organization
    g.tenant_scope_token = enter_scope(Scope(organization_id=organization.id))
    bind_organization(organization.slug)


def load_organization_or_404(slug: str, *, allow_suspended: bool = False) -> Organization:
    organization = find_organization(slug)
    if organization is None:
        abort(404)
    if not organization.is_active and not allow_suspended:
        raise OrganizationSuspendedError(organization)
    bind_request_organization(organization)
    return organization


def install_organization_url_handling(blueprint: Blueprint, *, slug_arg: str = "org_slug") -> None:
    """Resolve ``<org_slug>`` for every route of ``blueprint`` and put it back in ``url_for``."""

    @blueprint.url_value_preprocessor
    def pull_organization(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values is None or slug_arg not in values:
            return
        load_organization_or_404(values.pop(slug_arg))

    @blueprint.url_defaults
    def add_organization(endpoint: str, values: dict[str, Any]) -> None:
        organization = g.get("organization")
        if organization is not None and slug_arg not in values:
            values[slug_arg] = organization.slug


def current_membership() -> Membership | None:
    """The signed-in user's membership in the request's organization, if any."""
    if "membership" in g:
        membership: Membership | None = g.membership
        return membership
    membership = None
    organization = g.get("organization")
    if organization is not None and current_user.is_authenticated:
        membership = db.session.execute(
            sa.select(Membership).where(
                Membership.organization_id == organization.id,
                Membership.user_id == current_user.id,
            )
        ).scalar_one_or_none()
    g.membership = membership
    return membership


def current_role() -> Role | None:
    """The caller's role here: the API key's when the API authenticated one, else the member's."""
    role: Role | None = g.get("api_role")
    if role is not None:
        return role
    membership = current_membership()
    return membership.role if membership is not None else None


def current_actor() -> Actor:
    api_key = g.get("api_key")
    if api_key is not None:
        return Actor(
            label=f"api-key:{api_key.prefix}", api_key_id=api_key.id, role=str(api_key.role)
        )
    if current_user.is_authenticated:
        role = current_role()
        return Actor(
            label=current_user.email,
            user_id=current_user.id,
            role=str(role) if role is not None else None,
            is_operator=current_user.is_operator,
        )
    return Actor(label="anonymous")


def register_suspended_handler(app: Flask) -> None:
    @app.errorhandler(OrganizationSuspendedError)
    def suspended(error: OrganizationSuspendedError) -> Any:
        from comptoir.platform.errors import json_error, wants_json

        if wants_json():
            from flask_babel import gettext as _

            return json_error(403, "organization_suspended", _("This organization is suspended."))
        return render_template("tenants/suspended.html", suspended=error.organization), 403


# --------------------------------------------------------------------------- custom domains

_DOMAIN_CACHE_SECONDS = 60.0


class CustomDomainMiddleware:
    """Serve ``https://club.example/…`` as ``/o/<slug>/…`` for hosts mapped to an organization.

    Platform paths (``/static``, ``/login``, ``/api``, ``/healthz`` …) pass through unchanged.
    """

    def __init__(self, app: Flask, passthrough_prefixes: Iterable[str]) -> None:
        self.app = app
        self.wsgi_app: Callable[..., Any] = app.wsgi_app
        self.passthrough = tuple(passthrough_prefixes)
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _slug_for(self, host: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and now - cached[0] < _DOMAIN_CACHE_SECONDS:
            return cached[1]
        with self.app.app_context(), unscoped():
            slug = db.session.execute(
                sa.select(Organization.slug)
                .join(CustomDomain, CustomDomain.organization_id == Organization.id)
                .where(CustomDomain.host == host)
            ).scalar_one_or_none()
        self._cache[host] = (now, slug)
        return slug

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = environ.get("HTTP_HOST", "").split(":")[0].lower()
        path = environ.get("PATH_INFO", "")
        if host and not path.startswith(self.passthrough):
            slug = self._slug_for(host)
            if slug is not None:
                environ["PATH_INFO"] = f"/o/{slug}{path}"
        return self.wsgi_app(environ, start_response)
