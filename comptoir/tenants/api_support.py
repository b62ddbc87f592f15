"""What every domain's JSON API under ``/api/v1/o/{org}`` shares.

- :func:`organization_api_blueprint` makes a flask-smorest blueprint whose routes resolve the
  organization from the URL and authenticate the caller before the view runs: an API key of that
  organization (``Authorization: Bearer …``) or a signed-in staff member of it (session cookie plus
  the CSRF token in ``X-CSRFToken`` on writes). :func:`public_endpoint` (or ``public=True`` for a
  whole blueprint) lets customers in without either; such a view decides for itself.
- :func:`require_permission` checks the caller's role (403 when it lacks the permission).
- :class:`ApiSchema` and :class:`Text` make allow-list schemas; :func:`patch_schema` derives the
  body of a PATCH; :class:`PaginationQuerySchema`, :func:`paginate` and :func:`page_schema` make
  lists answer ``{"items", "page", "pages", "total"}``.

Something of another organization, or not visible to the caller, is 404 (API.md), so a key of
organization A on B's URL, or a signed-in member of A on B's URL, gets 404 as well.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable
from datetime import UTC
from functools import wraps
from typing import Any, NoReturn, TypedDict, TypeVar

import marshmallow as ma
import sqlalchemy as sa
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from flask import abort, current_app, g, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import NotFound, Unauthorized
from werkzeug.routing import IntegerConverter, Map
from wtforms import ValidationError as CSRFValidationError

from comptoir.platform.db import db
from comptoir.platform.extensions import csrf
from comptoir.platform.security import constant_time_equals, token_hash
from comptoir.platform.tenancy import unscoped
from comptoir.tenants import services
from comptoir.tenants.context import (
    current_membership,
    current_role,
    install_organization_url_handling,
)
from comptoir.tenants.models import ApiKey, Organization
from comptoir.tenants.permissions import Permission, ensure

View = TypeVar("View", bound=Callable[..., Any])

ORGANIZATION_URL_PREFIX = "/api/v1/o/<org>"
BEARER_SCHEME = "bearerAuth"
BIGINT_MAX = 2**63 - 1
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
# Deep enough for any real list; bounded so that the OFFSET stays a sane number.
MAX_PAGE = 100_000
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_PUBLIC = "comptoir_public"

BEARER_SCHEME_DOC = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "An API key of the organization, created in its admin portal (API keys) or with "
        "`comptoir create-api-key`: `Authorization: Bearer cpt_…`. A key carries a role (owner, "
        "admin, attendant) and works only under its own organization's URLs. Staff signed in to "
        "the admin portal may call the same endpoints with their session cookie instead; they "
        "then send the page's CSRF token in the `X-CSRFToken` header on POST, PUT, PATCH and "
        "DELETE."
    ),
}


# --------------------------------------------------------------------------- the blueprint


class IdConverter(IntegerConverter):
    """``<id:name>`` in these blueprints' routes: a row id, a positive 64-bit integer.

    Out of range is 404 here. werkzeug's own bounds check would make it a 405 whenever another
    method shares the URL (GET and PATCH ``/customers/<id>``), and the database would fail on
    numbers past 64 bits. The bounds are published in the OpenAPI document.
    """

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=BIGINT_MAX)

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= BIGINT_MAX:
            raise NotFound
        return number


class OrganizationApiBlueprint(Blueprint):
    """A flask-smorest blueprint at ``/api/v1/o/<org>``; see :func:`organization_api_blueprint`."""

    def __init__(
        self, name: str, import_name: str, *, description: str = "", public: bool = False
    ) -> None:
        super().__init__(
            name, import_name, url_prefix=ORGANIZATION_URL_PREFIX, description=description
        )
        self.public = public
        self._prepare_doc_cbks.append(self._prepare_access_doc)
        # Unknown slug: 404; suspended organization: the suspended handler's 403.
        install_organization_url_handling(self, slug_arg="org")
        self.before_request(self._authenticate)
        # Bearer calls carry no cookie to forge; session calls are checked in authenticate_request.
        csrf.exempt(self)

    def register(self, app: Any, options: dict[str, Any]) -> None:
        # Rules are compiled against the app's map as they are added: the converter goes first.
        app.url_map.converters.setdefault("id", IdConverter)
        super().register(app, options)

    def query_arguments(self, schema: Any, **kwargs: Any) -> Callable[[View], View]:
        """``@blp.arguments(schema, location="query")`` that refuses unknown parameters.

        A typo such as ``?perpage=10`` answers 422 instead of being silently ignored.
        """
        decorator: Callable[[View], View] = self.arguments(
            schema, location="query", unknown=ma.RAISE, **kwargs
        )
        return decorator

    def _authenticate(self) -> None:
        authenticate_request(required=not (self.public or _endpoint_is_public()))

    def register_views_in_doc(
        self, api: Any, app: Any, spec: Any, *, name: str, parameters: Any
    ) -> None:
        if BEARER_SCHEME not in spec.components.security_schemes:
            spec.components.security_scheme(BEARER_SCHEME, BEARER_SCHEME_DOC)
        super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)

    def _prepare_access_doc(
        self, doc: dict[str, Any], doc_info: dict[str, Any], *, method: str, **kwargs: Any
    ) -> dict[str, Any]:
        """Document the bearer requirement and the errors every operation may answer."""
        responses = doc.setdefault("responses", {})
        if not (self.public or doc_info.get(_PUBLIC)):
            doc["security"] = [{BEARER_SCHEME: []}]
            responses.setdefault(401, "UNAUTHORIZED")
        # 403: the role lacks a permission, or the organization is suspended.
        responses.setdefault(403, "FORBIDDEN")
        responses.setdefault(404, "NOT_FOUND")
        if method.upper() in UNSAFE_METHODS:
            # 400: a body that is not JSON, or a session call without its CSRF token.
            responses.setdefault(400, "BAD_REQUEST")
        return doc


def organization_api_blueprint(
    name: str, import_name: str, description: str, *, public: bool = False
) -> OrganizationApiBlueprint:
    """A blueprint for one domain's API under ``/api/v1/o/<org>``; register it with ``api``.

    Every route is resolved and authenticated before its view runs (see the module docstring);
    ``public=True`` skips authentication for all of its routes, :func:`public_endpoint` for one.
    Views find the organization with :func:`current_organization`, the caller with
    ``comptoir.tenants.context.current_actor()``, and commit once.
    """
    return OrganizationApiBlueprint(name, import_name, description=description, public=public)


def public_endpoint(view: View) -> View:
    """Let callers without a key or session in (customers with a cart token, say).

    Put it under ``@blp.route`` (like the other decorators). A valid key or staff session is
    still recognised, so the view can give staff more (``current_role()`` is then set); an
    invalid ``Bearer`` key is still refused with 401.
    """
    setattr(view, _PUBLIC, True)
    view._apidoc = {**getattr(view, "_apidoc", {}), _PUBLIC: True}  # type: ignore[attr-defined]
    return view


def _endpoint_is_public() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return False
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        method = "get" if request.method == "HEAD" else request.method.lower()
        view = getattr(view_class, method, None)
    return bool(getattr(view, _PUBLIC, False))


def current_organization() -> Organization:
    """The organization of the request's URL (set before any view of these blueprints runs)."""
    organization: Organization | None = g.get("organization")
    if organization is None:
        message = "no organization resolved for this request"
        raise RuntimeError(message)
    return organization


# --------------------------------------------------------------------------- authentication


def _unauthorized(*, invalid_token: bool) -> NoReturn:
    challenge = WWWAuthenticate("bearer", {"error": "invalid_token"} if invalid_token else None)
    raise Unauthorized(
        description=_("Send a valid API key of this organization: Authorization: Bearer <key>."),
        www_authenticate=challenge,
    )


def _bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``""`` for another or empty scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _separator, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def _is_live_key_of_another_organization(organization: Organization, token: str) -> bool:
    """Whether ``token`` is a working key, but of another organization than the URL's."""
    scheme, _separator, rest = token.partition("_")
    prefix, _separator, secret = rest.partition("_")
    if scheme != services.API_KEY_PREFIX or not prefix or not secret:
        return False
    with unscoped():
        row = db.session.execute(
            sa.select(ApiKey.organization_id, ApiKey.secret_hash, ApiKey.revoked_at).where(
                ApiKey.prefix == prefix
            )
        ).one_or_none()
    return (
        row is not None
        and row.organization_id != organization.id
        and row.revoked_at is None
        and constant_time_equals(row.secret_hash, token_hash(secret))
    )


def _authenticate_key(organization: Organization, token: str) -> ApiKey | None:
    key = services.authenticate_api_key(organization, token)
    if key is None:
        return None
    if db.session.is_modified(key):
        # authenticate_api_key moved last_used_at (at most once a minute per key). Commit that
        # on its own now: reads never commit, and a write that fails and rolls back was still a
        # use of the key. The view's own work starts in a fresh transaction and commits once.
        db.session.commit()
    return key


def _csrf_failure() -> str | None:
    """Why a session call's CSRF token is refused, or None when it passes or is not needed."""
    config = current_app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return None
    if request.method not in config.get("WTF_CSRF_METHODS", UNSAFE_METHODS):
        return None
    token = None
    for header in config.get("WTF_CSRF_HEADERS", ["X-CSRFToken"]):
        token = request.headers.get(header)
        if token:
            break
    try:
        validate_csrf(token)
    except CSRFValidationError as error:
        return str(error.args[0]) if error.args else "The CSRF token is invalid."
    return None


def authenticate_request(*, required: bool = True) -> None:
    """Establish who calls this organization's API; set ``g.api_key`` and ``g.api_role`` for keys.

    Run by the blueprints' ``before_request`` hook. With ``required=False`` (public endpoints) a
    caller without credentials passes as anonymous, and a staff session whose write lacks a
    valid CSRF token counts as anonymous too rather than as staff.
    """
    organization = g.get("organization")
    if organization is None:
        abort(404)
    token = _bearer_token()
    if token is not None and (token or required):
        if not token:
            _unauthorized(invalid_token=False)
        key = _authenticate_key(organization, token)
        if key is None:
            if _is_live_key_of_another_organization(organization, token):
                abort(404)
            _unauthorized(invalid_token=True)
        g.api_key = key
        g.api_role = key.role
        return
    if current_user.is_authenticated:
        if current_membership() is None:
            if required:
                abort(404)  # staff of another organization: this one is not theirs to see
            return
        failure = _csrf_failure()
        if failure is not None:
            if required:
                raise CSRFError(failure)
            # current_role() reads the cached membership: without a valid token, no staff powers.
            g.membership = None
        return
    if required:
        _unauthorized(invalid_token=False)


# --------------------------------------------------------------------------- permissions


def require_permission(permission: Permission) -> Callable[[View], View]:
    """Refuse the view with 403 ``forbidden`` unless the caller's role carries ``permission``.

    Put it right under ``@blp.route`` so it runs before the body is parsed.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            ensure(current_role(), permission)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


# --------------------------------------------------------------------------- schemas

# C0 controls and DEL have no place in a name or an address; PostgreSQL refuses NUL outright.
_CONTROLS = r"\u0000-\u001f\u007f"
_TEXT_CONTROLS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"
# Exactly what str.strip() removes, spelled out: JSON Schema's \s (ECMA-262) differs slightly.
_SPACES = (
    r"\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ApiSchema(ma.Schema):
    """Base of the API's schemas: an allow-list, unknown fields answer 422."""

    class Meta:
        unknown = ma.RAISE


class _TextValidator(ma.validate.Validator):
    def __init__(self, pattern: str, *, blank: bool, error: Any = None) -> None:
        self.regex = re.compile(pattern)
        self.blank = blank
        self.error = error

    def __call__(self, value: str) -> str:
        if not self.blank and not value.strip():
            raise ma.ValidationError(_("This field cannot be blank."))
        # Lone surrogates arrive through JSON escapes and cannot be stored as UTF-8.
        if _SURROGATE.search(value) or not self.regex.fullmatch(value):
            raise ma.ValidationError(
                str(self.error)
                if self.error
                else _("Remove the control characters from this text.")
            )
        return value


class Text(ma.fields.String):
    """A string without control characters; ``blank=False`` also refuses empty or spaces only.

    ``multiline=True`` allows tabs and line breaks; ``pattern`` (anchored with ``^…$``, in the
    common subset of Python and ECMA-262 regular expressions) replaces the character rule, with
    ``error`` as its message. The rule is published as the field's ``pattern`` in the OpenAPI
    document and checked as a full match, so both always agree.
    """

    def __init__(
        self,
        *,
        blank: bool = True,
        multiline: bool = False,
        pattern: str | None = None,
        error: Any = None,
        **kwargs: Any,
    ) -> None:
        if pattern is None:
            char = f"[^{_TEXT_CONTROLS if multiline else _CONTROLS}]"
            visible = f"[^{_CONTROLS}{_SPACES}]"
            pattern = f"^{char}*$" if blank else f"^{char}*{visible}{char}*$"
        metadata = {"pattern": pattern, **kwargs.pop("metadata", {})}
        validators = kwargs.pop("validate", None) or []
        if callable(validators):
            validators = [validators]
        super().__init__(
            metadata=metadata,
            validate=[_TextValidator(pattern, blank=blank, error=error), *validators],
            **kwargs,
        )


def _caseless(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The services refuse addresses under special-use domains (they can never receive mail); the
# pattern says so in the OpenAPI document, so that the published contract and the server agree.
_SPECIAL_USE_DOMAINS = "|".join(_caseless(name) for name in sorted(SPECIAL_USE_DOMAIN_NAMES))
EMAIL_PATTERN = rf"^[^@]+@(?!(?:[^@]*\.)?(?:{_SPECIAL_USE_DOMAINS})\.?$)[^@]+$"


class _EmailValidator(ma.validate.Validator):
    def __init__(self) -> None:
        self.syntax = ma.validate.Email()
        self.regex = re.compile(EMAIL_PATTERN)

    def __call__(self, value: str) -> str:
        try:
            self.syntax(value)
        except ma.ValidationError:
            valid = False
        else:
            valid = bool(self.regex.fullmatch(value)) and not _SURROGATE.search(value)
        if not valid:
            raise ma.ValidationError(_("Enter a valid e-mail address."))
        return value


class EmailAddress(ma.fields.String):
    """An e-mail address (at most 254 characters), not under a special-use domain (``.test``…).

    The services still decide whether it is acceptable; this documents and checks its shape.
    """

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "email", "pattern": EMAIL_PATTERN, **kwargs.pop("metadata", {})}
        validators = kwargs.pop("validate", None) or []
        if callable(validators):
            validators = [validators]
        super().__init__(
            metadata=metadata,
            validate=[ma.validate.Length(max=254), _EmailValidator(), *validators],
            **kwargs,
        )


class Instant(ma.fields.AwareDateTime):
    """A moment with its offset, loaded as UTC.

    Every instant the API receives is stored in UTC; converting here means one near the ends of
    the calendar (year 1 at +01:00 is before any UTC time) is a field error, not a crash deep in
    a service or the database driver.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ma.ValidationError(_("This date is out of range.")) from None


def patch_schema(schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The writable fields of ``schema``, none required and none defaulted: a PATCH body."""
    declared: dict[str, Any] = {}
    for field_name, field in schema._declared_fields.items():
        if field.dump_only:
            continue
        clone = copy.deepcopy(field)
        clone.required = False
        clone.load_default = ma.missing
        declared[field_name] = clone
    return type(name, (ApiSchema,), declared)


# --------------------------------------------------------------------------- pagination


class PaginationQuerySchema(ApiSchema):
    """``?page=&per_page=``; subclass it to add a list's own filters."""

    page = ma.fields.Integer(
        load_default=1,
        validate=ma.validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": "Page number, from 1."},
    )
    per_page = ma.fields.Integer(
        load_default=DEFAULT_PER_PAGE,
        validate=ma.validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"description": f"Items per page (at most {MAX_PER_PAGE})."},
    )
    # The platform switches the language of messages with ?lang= on every request.
    lang = ma.fields.String(
        validate=ma.validate.OneOf(["fr", "en"]),
        metadata={"description": "Language of error messages."},
    )


class Page(TypedDict):
    items: list[Any]
    page: int
    pages: int
    total: int


def paginate(query: sa.Select[Any], *, page: int, per_page: int) -> Page:
    """One page of ``query`` (ordered by the caller) with the counts the API answers with."""
    total = int(
        db.session.execute(
            sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
    )
    items = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).scalars()
    return {
        "items": list(items),
        "page": page,
        "pages": math.ceil(total / per_page),
        "total": total,
    }


@functools.cache
def page_schema(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """``{"items": [item], "page", "pages", "total"}`` for ``item_schema`` (one class per item)."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return type(
        name,
        (ApiSchema,),
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "page": ma.fields.Integer(required=True),
            "pages": ma.fields.Integer(required=True),
            "total": ma.fields.Integer(required=True),
        },
    )


__all__ = [
    "MAX_PER_PAGE",
    "ApiSchema",
    "EmailAddress",
    "IdConverter",
    "OrganizationApiBlueprint",
    "Page",
    "PaginationQuerySchema",
    "Text",
    "authenticate_request",
    "current_organization",
    "organization_api_blueprint",
    "page_schema",
    "paginate",
    "patch_schema",
    "public_endpoint",
    "require_permission",
]
