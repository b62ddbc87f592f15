"""Shop services: shop pages, their access rule and password, categories and article order.

Same contract as :mod:`comptoir.storefront.services`: explicit arguments, validation before any
change, an audit entry, a flush; the caller commits. The shop password is hashed with argon2 and
never logged, audited or returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError, ValidationError
from comptoir.platform.security import hash_password, verify_password
from comptoir.storefront import validation as check
from comptoir.storefront.models import (
    Article,
    ArticleTag,
    Audience,
    Shop,
    ShopAccess,
    ShopArticlePosition,
    ShopCategory,
)
from comptoir.storefront.services import check_tag_ids
from comptoir.tenants.models import Membership, Organization

SHOP_SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Paths of the microsite that a shop slug must not hide.
RESERVED_SHOP_SLUGS = frozenset(
    {"admin", "api", "static", "images", "login", "logout", "design", "documents", "orders"}
)
PAYMENT_METHODS = ("offline", "etransfer", "card")
MIN_SHOP_PASSWORD_LENGTH = 4
MAX_CART_MINUTES = 7 * 24 * 60
MAX_CART_RENEWALS = 20
ACCESS_TOKEN_SALT = "comptoir.shop-access"  # noqa: S105 - a signing namespace, not a secret
ACCESS_TOKEN_MAX_AGE = 12 * 60 * 60
SHOP_AUDIT_FIELDS = (
    "slug",
    "name_fr",
    "name_en",
    "intro_fr",
    "intro_en",
    "access",
    "cart_minutes",
    "max_cart_renewals",
    "payment_methods",
    "default_checkout_form_id",
    "etransfer",
    "communication",
)


@dataclass
class ShopData:
    """Every editable field of a shop. ``password`` None keeps the current one."""

    slug: str = ""
    name_fr: str = ""
    name_en: str = ""
    intro_fr: str = ""
    intro_en: str = ""
    access: str = ShopAccess.PUBLIC.value
    password: str | None = None
    cart_minutes: Any = 20
    max_cart_renewals: Any = 2
    payment_methods: list[str] = field(default_factory=lambda: ["offline"])
    default_checkout_form_id: Any = None
    etransfer: dict[str, Any] = field(default_factory=dict)
    communication: dict[str, Any] = field(default_factory=dict)
    customer_tag_ids: list[int] | None = None
    staff_tag_ids: list[int] | None = None


SHOP_DATA_FIELDS = frozenset(f.name for f in fields(ShopData))


def shop_data(shop: Shop) -> ShopData:
    return ShopData(
        slug=shop.slug,
        name_fr=shop.name_fr,
        name_en=shop.name_en,
        intro_fr=shop.intro_fr,
        intro_en=shop.intro_en,
        access=shop.access.value,
        password=None,
        cart_minutes=shop.cart_minutes,
        max_cart_renewals=shop.max_cart_renewals,
        payment_methods=list(shop.payment_methods),
        default_checkout_form_id=shop.default_checkout_form_id,
        etransfer=dict(shop.etransfer),
        communication=dict(shop.communication),
        customer_tag_ids=None,
        staff_tag_ids=None,
    )


def merge(current: ShopData, changes: dict[str, Any]) -> ShopData:
    unknown = set(changes) - SHOP_DATA_FIELDS
    if unknown:
        message = f"unknown shop fields: {sorted(unknown)}"
        raise TypeError(message)
    return replace(current, **changes)


def find_shop(slug: str) -> Shop | None:
    return db.session.execute(sa.select(Shop).where(Shop.slug == slug.lower())).scalar_one_or_none()


def get_shop(slug: str) -> Shop:
    shop = find_shop(slug)
    if shop is None:
        raise NotFoundError(_("This shop does not exist."))
    return shop


def list_shops() -> list[Shop]:
    return list(db.session.execute(sa.select(Shop).order_by(Shop.position, Shop.id)).scalars())


@dataclass
class _CleanShop:
    slug: str
    name_fr: str
    name_en: str
    intro_fr: str
    intro_en: str
    access: ShopAccess
    password: str | None
    cart_minutes: int
    max_cart_renewals: int
    payment_methods: list[str]
    default_checkout_form_id: int | None
    etransfer: dict[str, Any]
    communication: dict[str, Any]
    customer_tag_ids: list[int] | None
    staff_tag_ids: list[int] | None


def _check_slug(errors: check.FieldErrors, value: Any, shop: Shop | None) -> str:
    slug = check.clean_text(value, max_length=63).lower()
    if not SHOP_SLUG_PATTERN.match(slug) or slug in RESERVED_SHOP_SLUGS:
        errors.add("slug", _("Use lowercase letters, digits and dashes (not a reserved word)."))
    else:
        other = find_shop(slug)
        if other is not None and (shop is None or other.id != shop.id):
            errors.add("slug", _("Another shop already uses this address."))
    return slug


def _check_access(
    errors: check.FieldErrors, data: ShopData, shop: Shop | None
) -> tuple[ShopAccess, str | None]:
    try:
        access = ShopAccess(data.access)
    except ValueError:
        errors.add("access", _("Choose public, password or staff."))
        access = ShopAccess.PUBLIC
    password = data.password or None
    if password is not None and len(password) < MIN_SHOP_PASSWORD_LENGTH:
        errors.add(
            "password", _("Use at least %(count)d characters.", count=MIN_SHOP_PASSWORD_LENGTH)
        )
    has_password = password is not None or (shop is not None and shop.password_hash is not None)
    if access is ShopAccess.PASSWORD and not has_password:
        errors.add("password", _("A password-protected shop needs a password."))
    return access, password


def _check_cart_minutes(errors: check.FieldErrors, value: Any) -> int:
    cart_minutes = check.quantity(errors, "cart_minutes", value, minimum=1)
    if cart_minutes is None and "cart_minutes" not in errors.fields:
        errors.add("cart_minutes", _("Enter a number of minutes."))
    elif cart_minutes is not None and cart_minutes > MAX_CART_MINUTES:
        errors.add("cart_minutes", _("At most a week (%(count)d minutes).", count=MAX_CART_MINUTES))
    return cart_minutes or 20


def _check_cart_renewals(errors: check.FieldErrors, value: Any) -> int:
    renewals = check.quantity(errors, "max_cart_renewals", value, minimum=0)
    if renewals is None and "max_cart_renewals" not in errors.fields:
        errors.add("max_cart_renewals", _("Enter a number of renewals."))
    elif renewals is not None and renewals > MAX_CART_RENEWALS:
        errors.add("max_cart_renewals", _("At most %(count)d renewals.", count=MAX_CART_RENEWALS))
    return renewals if renewals is not None else 2


def _check_payment_methods(
    errors: check.FieldErrors, methods: Any, shop: Shop | None, organization: Organization
) -> list[str]:
    from comptoir.billing.payment_methods import shop_offerable
    from comptoir.billing.stripe_connect import card_payments_ready

    # Card appears once the card payment method is registered (Stripe); until then it is refused.
    offerable = [m.name for m in shop_offerable() if m.name in PAYMENT_METHODS]
    if not isinstance(methods, list) or any(m not in offerable for m in methods):
        errors.add("payment_methods", _("Choose among: %(m)s.", m=", ".join(offerable)))
        return []
    if not methods:
        errors.add("payment_methods", _("Choose at least one payment method."))
    # Card is newly offered only once Stripe can take the payments. A shop that already offers
    # it keeps it (its other settings stay editable); the checkout refuses cards meanwhile.
    newly_offered = set(methods) - set(shop.payment_methods if shop is not None else [])
    if "card" in newly_offered and not card_payments_ready(organization):
        errors.add(
            "payment_methods",
            _(
                "Card payments need the organization's Stripe account, with payments enabled: "
                "connect Stripe and finish its onboarding first (admin portal, Stripe page)."
            ),
        )
    return list(dict.fromkeys(methods))


def _staff_user_ids() -> list[int]:
    return list(db.session.execute(sa.select(Membership.user_id)).scalars())


def _check_settings(
    errors: check.FieldErrors, name: str, value: Any, methods: list[str]
) -> dict[str, Any]:
    """The e-Transfer and e-mail settings, checked by billing, which uses them."""
    from comptoir.billing import communications, etransfer

    if not isinstance(value, dict):
        errors.add(name, _("Give an object."))
        return {}
    try:
        if name == "etransfer":
            return etransfer.clean_settings(value, offered="etransfer" in methods)
        return communications.clean_settings(value, staff_user_ids=_staff_user_ids())
    except ValidationError as error:
        for field_name, messages in error.fields.items():
            for message in messages:
                errors.add(f"{name}.{field_name}", message)
        return {}


def _validate_shop(data: ShopData, shop: Shop | None, organization: Organization) -> _CleanShop:
    errors = check.FieldErrors()
    slug = _check_slug(errors, data.slug, shop)
    name_fr, name_en = check.translations(
        errors, "name", data.name_fr, data.name_en, max_length=200, required=True
    )
    intro_fr, intro_en = check.translations(
        errors, "intro", data.intro_fr, data.intro_en, max_length=5000, required=False
    )
    access, password = _check_access(errors, data, shop)
    cart_minutes = _check_cart_minutes(errors, data.cart_minutes)
    max_cart_renewals = _check_cart_renewals(errors, data.max_cart_renewals)
    methods = _check_payment_methods(errors, data.payment_methods, shop, organization)
    default_form = None
    if data.default_checkout_form_id is not None:
        default_form = check.quantity(
            errors, "default_checkout_form_id", data.default_checkout_form_id, minimum=1
        )
        if default_form is not None:
            from comptoir.storefront.checkout_forms import form_exists

            if not form_exists(default_form):
                errors.add("default_checkout_form_id", _("This checkout form does not exist."))
    etransfer = _check_settings(errors, "etransfer", data.etransfer, methods)
    communication = _check_settings(errors, "communication", data.communication, methods)
    customer_tags = (
        check_tag_ids(errors, "customer_tag_ids", data.customer_tag_ids)
        if data.customer_tag_ids is not None
        else None
    )
    staff_tags = (
        check_tag_ids(errors, "staff_tag_ids", data.staff_tag_ids)
        if data.staff_tag_ids is not None
        else None
    )
    errors.raise_if_any()
    return _CleanShop(
        slug=slug,
        name_fr=name_fr,
        name_en=name_en,
        intro_fr=intro_fr,
        intro_en=intro_en,
        access=access,
        password=password,
        cart_minutes=cart_minutes,
        max_cart_renewals=max_cart_renewals,
        payment_methods=methods,
        default_checkout_form_id=default_form,
        etransfer=etransfer,
        communication=communication,
        customer_tag_ids=customer_tags,
        staff_tag_ids=staff_tags,
    )


def _snapshot(shop: Shop) -> dict[str, Any]:
    values = audit.snapshot(shop, SHOP_AUDIT_FIELDS)
    values["customer_tag_ids"] = shop.tag_ids_for(Audience.CUSTOMER)
    values["staff_tag_ids"] = shop.tag_ids_for(Audience.STAFF)
    return values


def _replace_categories(shop: Shop, audience: Audience, tag_ids: list[int]) -> None:
    existing = {c.tag_id: c for c in shop.categories if c.audience is audience}
    others = [c for c in shop.categories if c.audience is not audience]
    ordered: list[ShopCategory] = []
    for position, tag_id in enumerate(tag_ids):
        category = existing.get(tag_id) or ShopCategory(
            organization_id=shop.organization_id, tag_id=tag_id, audience=audience
        )
        category.position = position
        ordered.append(category)
    shop.categories = others + ordered


def _apply(shop: Shop, clean: _CleanShop) -> bool:
    """Write the values; answers whether the password changed (earlier unlocks then end)."""
    for name in SHOP_AUDIT_FIELDS:
        setattr(shop, name, getattr(clean, name))
    if clean.access is ShopAccess.PASSWORD:
        if clean.password is None:
            return False
        shop.password_hash = hash_password(clean.password)
    elif shop.password_hash is None:
        return False
    else:
        shop.password_hash = None
    shop.password_version = (shop.password_version or 1) + 1
    return True


def create_shop(*, organization: Organization, actor: Actor, data: ShopData) -> Shop:
    clean = _validate_shop(data, None, organization)
    position = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.max(Shop.position), -1))
    ).scalar()
    shop = Shop(organization_id=organization.id, password_version=1, position=(position or 0) + 1)
    password_set = _apply(shop, clean)
    db.session.add(shop)
    _replace_categories(shop, Audience.CUSTOMER, clean.customer_tag_ids or [])
    _replace_categories(shop, Audience.STAFF, clean.staff_tag_ids or [])
    db.session.flush()
    after = _snapshot(shop)
    after["password_set"] = password_set
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="shop.created",
        target=shop,
        after=after,
    )
    return shop


def update_shop(*, organization: Organization, actor: Actor, shop: Shop, data: ShopData) -> Shop:
    clean = _validate_shop(data, shop, organization)
    before = _snapshot(shop)
    password_changed = _apply(shop, clean)
    if clean.customer_tag_ids is not None:
        _replace_categories(shop, Audience.CUSTOMER, clean.customer_tag_ids)
    if clean.staff_tag_ids is not None:
        _replace_categories(shop, Audience.STAFF, clean.staff_tag_ids)
    db.session.flush()
    after = _snapshot(shop)
    if after != before or password_changed:
        # Whether the password changed is recorded, never the password or its hash.
        after["password_changed"] = password_changed
        audit.record(
            organization_id=organization.id,
            actor=actor,
            action="shop.updated",
            target=shop,
            before=before,
            after=after,
        )
    return shop


def set_categories(
    *,
    organization: Organization,
    actor: Actor,
    shop: Shop,
    audience: Audience,
    tag_ids: Sequence[int],
) -> Shop:
    """Replace one of the shop's ordered category lists (customer or staff)."""
    changes = (
        {"customer_tag_ids": list(tag_ids)}
        if audience is Audience.CUSTOMER
        else {"staff_tag_ids": list(tag_ids)}
    )
    return update_shop(
        organization=organization, actor=actor, shop=shop, data=merge(shop_data(shop), changes)
    )


def move_category(
    *,
    organization: Organization,
    actor: Actor,
    shop: Shop,
    audience: Audience,
    tag_id: int,
    offset: int,
) -> Shop:
    tag_ids = shop.tag_ids_for(audience)
    if tag_id not in tag_ids:
        raise NotFoundError(_("This category is not in the shop."))
    index = tag_ids.index(tag_id)
    target = min(max(index + offset, 0), len(tag_ids) - 1)
    tag_ids.insert(target, tag_ids.pop(index))
    return set_categories(
        organization=organization, actor=actor, shop=shop, audience=audience, tag_ids=tag_ids
    )


# --------------------------------------------------------------------------- article order


def ordered_article_ids(shop: Shop, tag_id: int | None = None) -> list[int]:
    """Active articles of the shop's categories (or of one tag) in the shop's order."""
    position = (
        sa.select(ShopArticlePosition.position)
        .where(
            ShopArticlePosition.shop_id == shop.id,
            ShopArticlePosition.article_id == Article.id,
        )
        .scalar_subquery()
    )
    tag_ids = [tag_id] if tag_id is not None else [c.tag_id for c in shop.categories]
    query = sa.select(Article.id).where(
        Article.active.is_(True),
        Article.id.in_(sa.select(ArticleTag.article_id).where(ArticleTag.tag_id.in_(tag_ids))),
    )
    query = query.order_by(
        position.asc().nulls_last(), Article.name_fr, Article.name_en, Article.id
    )
    return list(db.session.execute(query).scalars())


def reorder_articles(
    *,
    organization: Organization,
    actor: Actor,
    shop: Shop,
    tag_id: int,
    article_ids: Sequence[int],
) -> None:
    """Put some articles of one category (all of them, or one page) in the order given.

    Positions are per shop. The articles given are permuted among the places they already hold
    in the shop's whole order, so every other article keeps its place.
    """
    current = set(ordered_article_ids(shop, tag_id))
    wanted = list(dict.fromkeys(article_ids))
    if not wanted or not set(wanted) <= current:
        raise ValidationError(
            _("The list of articles changed meanwhile; reload the page and try again."),
            fields={"article_ids": [_("Give articles of this category only.")]},
        )
    whole = ordered_article_ids(shop)
    members = set(wanted)
    slots = [index for index, article_id in enumerate(whole) if article_id in members]
    for slot, article_id in zip(slots, wanted, strict=True):
        whole[slot] = article_id
    _write_positions(shop, whole)
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="shop.articles_reordered",
        target=shop,
        after={"tag_id": tag_id, "article_ids": wanted},
    )
    db.session.flush()


def move_article(
    *,
    organization: Organization,
    actor: Actor,
    shop: Shop,
    tag_id: int,
    article_id: int,
    offset: int,
) -> None:
    ids = ordered_article_ids(shop, tag_id)
    if article_id not in ids:
        raise NotFoundError(_("This article is not in the category."))
    index = ids.index(article_id)
    target = min(max(index + offset, 0), len(ids) - 1)
    ids.insert(target, ids.pop(index))
    reorder_articles(
        organization=organization, actor=actor, shop=shop, tag_id=tag_id, article_ids=ids
    )


def _write_positions(shop: Shop, article_ids: list[int]) -> None:
    rows = {
        row.article_id: row
        for row in db.session.execute(
            sa.select(ShopArticlePosition).where(ShopArticlePosition.shop_id == shop.id)
        ).scalars()
    }
    for position, article_id in enumerate(article_ids):
        row = rows.get(article_id)
        if row is None:
            db.session.add(
                ShopArticlePosition(
                    organization_id=shop.organization_id,
                    shop_id=shop.id,
                    article_id=article_id,
                    position=position,
                )
            )
        elif row.position != position:
            row.position = position


# --------------------------------------------------------------------------- password access


def check_password(shop: Shop, password: str) -> bool:
    """Whether ``password`` opens ``shop``; costs the same whether the shop has one or not."""
    ok = verify_password(shop.password_hash, password or "")
    return ok and shop.access is ShopAccess.PASSWORD


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=ACCESS_TOKEN_SALT)


def issue_access_token(shop: Shop) -> str:
    """A signed token opening ``shop`` (no other) until it expires or the password changes."""
    return _serializer().dumps([shop.organization_id, shop.id, shop.password_version])


def access_token_valid(shop: Shop, token: str | None) -> bool:
    if not token:
        return False
    try:
        value = _serializer().loads(token, max_age=ACCESS_TOKEN_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return False
    return value == [shop.organization_id, shop.id, shop.password_version]
