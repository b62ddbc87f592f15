"""Cart services: create, reach, fill, renew, and the staff powers (price, expiry).

Same contract as the catalog services: explicit arguments, validation before any change, an
audit entry for staff actions, a flush; the caller commits once, and promptly: a write that holds
stock keeps a lock on that article or variant row until the commit (see
:mod:`comptoir.storefront.holds`). Every operation on a cart first locks the cart row itself, so
two requests of the same cart (a double click) cannot both pass the per-order maximum.

The same :func:`summarize` feeds the cart page, the API and the invoice preview, so they agree.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from comptoir.billing.taxes import (
    AppliedRate,
    LineTax,
    TaxableLine,
    TaxBreakdown,
    TaxTotal,
    compute_taxes,
    rates_by_category,
)
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from comptoir.platform.security import constant_time_equals, new_token, token_hash
from comptoir.storefront import holds
from comptoir.storefront.cart_models import Cart, CartLine, CartStatus
from comptoir.storefront.models import LANGUAGES, Article, ArticleVariant, Shop
from comptoir.tenants.models import Organization, Role
from comptoir.tenants.permissions import Permission, role_can

RENEWAL_WINDOW = timedelta(minutes=5)
# Staff may set any expiry; a year bounds typing mistakes (a cart is not a reservation system).
MAX_STAFF_EXPIRY = timedelta(days=365)
MAX_QUANTITY = 10_000
MAX_UNIT_PRICE = 100_000_000  # minor units: a million dollars
MAX_REASON_LENGTH = 500
PRICE_AUDIT_FIELDS = ("unit_price", "original_unit_price", "price_override_reason")


class CartExpiredError(DomainError):
    status = 410
    code = "cart_expired"


class ShopLockedError(DomainError):
    status = 403
    code = "shop_locked"


def cart_expired_error() -> CartExpiredError:
    return CartExpiredError(
        _("This cart expired and its items were released. Add them again if still available.")
    )


# --------------------------------------------------------------------------- reaching a cart


def get_cart(cart_id: int) -> Cart:
    """A cart of the organization in scope (404 otherwise)."""
    cart = db.session.get(Cart, cart_id)
    if cart is None:
        raise NotFoundError(_("This cart does not exist."))
    return cart


def cart_by_token(token: str | None, *, shop: Shop | None = None) -> Cart | None:
    if not token or len(token) > 200:
        return None
    query = sa.select(Cart).where(Cart.token_hash == token_hash(token))
    if shop is not None:
        query = query.where(Cart.shop_id == shop.id)
    return db.session.execute(query).scalar_one_or_none()


def token_matches(cart: Cart, token: str | None) -> bool:
    return bool(token) and constant_time_equals(cart.token_hash, token_hash(token or ""))


def reach_cart(
    cart_id: int, *, token: str | None, is_staff: bool, lock: bool = False
) -> tuple[Cart, str]:
    """The cart and its shop's slug, when the caller may reach it: staff of its organization, or
    its token's holder. Anyone else gets the same 404 as for a cart that does not exist.

    ``lock`` takes the cart's row lock at once (for a change that follows in this transaction).
    """
    query = (
        sa.select(Cart, Shop.slug)
        .join(Shop, sa.and_(Shop.id == Cart.shop_id, Shop.organization_id == Cart.organization_id))
        .where(Cart.id == cart_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update(of=Cart)
    row = db.session.execute(query).one_or_none()
    if row is None or not (is_staff or token_matches(row[0], token)):
        raise NotFoundError(_("This cart does not exist."))
    if lock:
        _remember_lock(row[0])
    return row[0], row[1]


def reachable_cart(cart_id: int, *, token: str | None, is_staff: bool) -> Cart:
    return reach_cart(cart_id, token=token, is_staff=is_staff)[0]


# Carts whose row lock the current transaction holds (per transaction object, weakly kept, so an
# entry never outlives its transaction).
_locked: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()


def _remember_lock(cart: Cart) -> None:
    transaction = db.session().get_transaction()
    if transaction is not None:
        _locked.setdefault(transaction, set()).add(cart.id)


def lock_cart(cart: Cart) -> Cart:
    """Lock the cart row for the rest of the transaction (once) and refresh it.

    Every change to a cart takes this lock first, then the stock rows it needs (if any).
    """
    transaction = db.session().get_transaction()
    if transaction is not None and cart.id in _locked.get(transaction, ()):
        return cart
    locked = db.session.execute(
        sa.select(Cart)
        .where(Cart.id == cart.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    _remember_lock(locked)
    return locked


_lock = lock_cart


def is_expired(cart: Cart, now: datetime | None = None) -> bool:
    return cart.status is CartStatus.EXPIRED or (
        cart.status is CartStatus.ACTIVE and cart.expires_at <= (now or utcnow())
    )


def ensure_open(cart: Cart, now: datetime | None = None) -> None:
    if cart.status is CartStatus.CHECKED_OUT:
        raise ConflictError(_("This cart was already checked out."))
    if is_expired(cart, now):
        raise cart_expired_error()


def seconds_left(cart: Cart, now: datetime | None = None) -> int:
    return max(int((cart.expires_at - (now or utcnow())).total_seconds()), 0)


def can_renew(cart: Cart, shop: Shop, now: datetime | None = None) -> bool:
    """Whether the customer may renew now: fewer than 5 minutes left and renewals remaining."""
    now = now or utcnow()
    return (
        not is_expired(cart, now)
        and cart.status is CartStatus.ACTIVE
        and cart.renewals < shop.max_cart_renewals
        and cart.expires_at - now < RENEWAL_WINDOW
    )


def renewals_left(cart: Cart, shop: Shop) -> int:
    return max(shop.max_cart_renewals - cart.renewals, 0)


# --------------------------------------------------------------------------- permissions


def can_override_prices(role: Role | str | None, organization: Organization) -> bool:
    """Owners and admins; attendants only when the organization allows it."""
    if role is None:
        return False
    if role_can(role, Permission.OVERRIDE_PRICES):
        return True
    return Role(role) is Role.ATTENDANT and organization.attendant_can_override_prices


def can_manage_carts(role: Role | str | None) -> bool:
    """Staff selling at the counter: change expiries, preview invoices, reach any cart."""
    return role_can(role, Permission.SELL)


def _ensure_staff(actor: Actor) -> None:
    if not can_manage_carts(actor.role):
        raise ForbiddenError(_("Only staff of this organization may do this."))


# --------------------------------------------------------------------------- validation


def check_quantity(value: Any, field: str = "quantity") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        message = _("Enter a whole number.")
        raise ValidationError(message, fields={field: [message]})
    if value < 1:
        message = _("The quantity must be at least 1.")
        raise ValidationError(message, fields={field: [message]})
    if value > MAX_QUANTITY:
        message = _("The quantity must be at most %(max)d.", max=MAX_QUANTITY)
        raise ValidationError(message, fields={field: [message]})
    return value


def _check_max_per_order(
    cart: Cart, article: Article, line: CartLine | None, quantity: int
) -> None:
    if article.max_per_order is None:
        return
    others = sum(
        other.quantity
        for other in cart.lines
        if other.article_id == article.id and (line is None or other.id != line.id)
    )
    if others + quantity > article.max_per_order:
        message = _("At most %(count)d per order for this article.", count=article.max_per_order)
        raise ValidationError(message, fields={"quantity": [message]})


# --------------------------------------------------------------------------- customer actions


def create_cart(
    *, organization: Organization, actor: Actor, shop: Shop, locale: str
) -> tuple[Cart, str]:
    """A new empty cart of ``shop``; returns it with its token (only a hash is kept)."""
    del actor  # carts are opened by anyone; only staff actions are audited
    token = new_token()
    cart = Cart(
        organization_id=organization.id,
        shop_id=shop.id,
        token_hash=token_hash(token),
        status=CartStatus.ACTIVE,
        expires_at=utcnow() + timedelta(minutes=shop.cart_minutes),
        renewals=0,
        locale=locale if locale in LANGUAGES else str(organization.default_locale),
        currency=organization.currency,
    )
    db.session.add(cart)
    db.session.flush()
    return cart, token


def remember_locale(cart: Cart, locale: str) -> None:
    """The customer's language as of their last visit (invoices are written in it)."""
    if locale in LANGUAGES and cart.locale != locale:
        cart.locale = locale


def unit_price_of(article: Article, variant: ArticleVariant | None) -> int:
    return article.price if variant is None else variant.effective_price


def add_line(
    *,
    organization: Organization,
    actor: Actor,
    cart: Cart,
    article: Article,
    variant: ArticleVariant | None,
    quantity: Any,
) -> CartLine:
    """Add ``quantity`` units to the cart (to its line of that unit when there is one).

    ``article`` must be one the caller may see in the cart's shop: the view checks visibility.
    """
    del organization, actor
    quantity = check_quantity(quantity)
    if article.variants and variant is None:
        message = _("Choose an option.")
        raise ValidationError(message, fields={"variant_id": [message]})
    if variant is not None and variant.article_id != article.id:
        raise NotFoundError(_("This option does not exist."))
    cart = lock_cart(cart)
    ensure_open(cart)
    variant_id = variant.id if variant is not None else None
    line = next(
        (
            existing
            for existing in cart.lines
            if existing.article_id == article.id and existing.variant_id == variant_id
        ),
        None,
    )
    wanted = quantity + (line.quantity if line is not None else 0)
    if wanted > MAX_QUANTITY:
        check_quantity(wanted)
    _check_max_per_order(cart, article, line, wanted)
    # The line is written first, and the stock row locked last: the lock is then held only for
    # the few statements that must see the other carts' holds. A refusal rolls the line back.
    if line is not None:
        line.quantity = wanted
        db.session.flush()
        holds.hold_line(cart=cart, line=line, quantity=wanted)
        return line
    price = unit_price_of(article, variant)
    line = CartLine(
        organization_id=cart.organization_id,
        cart_id=cart.id,
        article_id=article.id,
        variant_id=variant_id,
        quantity=wanted,
        unit_price=price,
        original_unit_price=price,
    )
    cart.lines.append(line)
    db.session.flush()
    holds.hold_new_line(cart=cart, line=line, quantity=wanted)
    return line


def _line_of(cart: Cart, line_id: int) -> CartLine:
    line = next((line for line in cart.lines if line.id == line_id), None)
    if line is None:
        raise NotFoundError(_("This line is not in the cart."))
    return line


def change_quantity(
    *, organization: Organization, actor: Actor, cart: Cart, line_id: int, quantity: Any
) -> CartLine:
    """Set a line's quantity: raising holds the difference, lowering releases it."""
    del organization, actor
    quantity = check_quantity(quantity)
    cart = lock_cart(cart)
    line = _line_of(cart, line_id)
    ensure_open(cart)
    article = db.session.get(Article, line.article_id)
    if article is not None:
        _check_max_per_order(cart, article, line, quantity)
    line.quantity = quantity
    db.session.flush()
    holds.hold_line(cart=cart, line=line, quantity=quantity)
    return line


def remove_line(*, organization: Organization, actor: Actor, cart: Cart, line_id: int) -> None:
    del organization, actor
    cart = lock_cart(cart)
    line = _line_of(cart, line_id)
    ensure_open(cart)
    holds.release_line(line)
    cart.lines.remove(line)
    db.session.flush()


def renew(*, organization: Organization, actor: Actor, cart: Cart, shop: Shop) -> Cart:
    """Give the customer another ``shop.cart_minutes`` when fewer than 5 minutes remain."""
    del organization, actor
    cart = lock_cart(cart)
    ensure_open(cart)
    now = utcnow()
    if cart.renewals >= shop.max_cart_renewals:
        raise ConflictError(_("This cart cannot be renewed again."))
    if cart.expires_at - now >= RENEWAL_WINDOW:
        raise ConflictError(_("You can renew the cart when fewer than 5 minutes remain."))
    cart.expires_at = now + timedelta(minutes=shop.cart_minutes)
    cart.renewals += 1
    db.session.flush()
    holds.rehold_cart(cart=cart, lines=list(cart.lines))
    return cart


# --------------------------------------------------------------------------- staff powers


def set_expiry(
    *, organization: Organization, actor: Actor, cart: Cart, expires_at: datetime
) -> Cart:
    """Staff set the cart's expiry to any time (audited).

    A time in the past ends the cart now and frees its stock. A future time holds every line
    again until then, an expired cart included, when the stock is still there (else
    ``out_of_stock`` and nothing changes).
    """
    _ensure_staff(actor)
    if expires_at.tzinfo is None:
        message = _("Give the time with its time zone.")
        raise ValidationError(message, fields={"expires_at": [message]})
    try:
        expires_at = expires_at.astimezone(UTC)
    except OverflowError:
        # 0001-01-01 at UTC+1 is before the first representable instant.
        message = _("This date is out of range.")
        raise ValidationError(message, fields={"expires_at": [message]}) from None
    now = utcnow()
    if expires_at > now + MAX_STAFF_EXPIRY:
        message = _("Choose a time within a year.")
        raise ValidationError(message, fields={"expires_at": [message]})
    # A past time ends the cart now: that is what it means, and what is kept and audited.
    expires_at = max(expires_at, now)
    cart = lock_cart(cart)
    if cart.status is CartStatus.CHECKED_OUT:
        raise ConflictError(_("This cart was already checked out."))
    before = audit.snapshot(cart, ("expires_at", "status"))
    cart.expires_at = expires_at
    if expires_at <= now:
        cart.status = CartStatus.EXPIRED
        holds.release_cart(cart)
    else:
        cart.status = CartStatus.ACTIVE
        db.session.flush()
        holds.rehold_cart(cart=cart, lines=list(cart.lines))
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="cart.expiry_changed",
        target=cart,
        before=before,
        after=audit.snapshot(cart, ("expires_at", "status")),
    )
    return cart


def check_unit_price(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        message = _("Enter the price in cents, as a whole number.")
        raise ValidationError(message, fields={"unit_price": [message]})
    if value < 0 or value > MAX_UNIT_PRICE:
        message = _("Enter a price between 0 and %(max)s.", max=f"{MAX_UNIT_PRICE // 100:,}")
        raise ValidationError(message, fields={"unit_price": [message]})
    return value


def check_reason(value: Any) -> str:
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:
        message = _("Say why the price changes.")
        raise ValidationError(message, fields={"reason": [message]})
    if len(reason) > MAX_REASON_LENGTH:
        message = _("At most %(count)d characters.", count=MAX_REASON_LENGTH)
        raise ValidationError(message, fields={"reason": [message]})
    return reason


def override_price(
    *,
    organization: Organization,
    actor: Actor,
    cart: Cart,
    line_id: int,
    unit_price: Any,
    reason: Any,
) -> CartLine:
    """Staff change a line's unit price with a reason (audited); the original price stays."""
    if not can_override_prices(actor.role, organization):
        message = _("Your role does not allow changing prices.")
        raise ForbiddenError(message, fields={"unit_price": [message]})
    errors: dict[str, list[str]] = {}
    for check, value in ((check_unit_price, unit_price), (check_reason, reason)):
        try:
            check(value)
        except ValidationError as error:
            errors.update(error.fields)
    if errors:
        raise ValidationError(_("Some fields are not valid."), fields=errors)
    cart = lock_cart(cart)
    line = _line_of(cart, line_id)
    ensure_open(cart)
    before = {"line_id": line.id, **audit.snapshot(line, PRICE_AUDIT_FIELDS)}
    line.unit_price = check_unit_price(unit_price)
    line.price_override_reason = check_reason(reason)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="cart.price_overridden",
        target=cart,
        before=before,
        after={"line_id": line.id, **audit.snapshot(line, PRICE_AUDIT_FIELDS)},
    )
    return line


# --------------------------------------------------------------------------- totals


@dataclass(frozen=True)
class SummaryLine:
    line: CartLine
    article: Article | None
    variant: ArticleVariant | None
    name: str
    taxes: list[LineTax]

    @property
    def id(self) -> int:
        return self.line.id

    @property
    def quantity(self) -> int:
        return self.line.quantity

    @property
    def unit_price(self) -> int:
        return self.line.unit_price

    @property
    def original_unit_price(self) -> int:
        return self.line.original_unit_price

    @property
    def total(self) -> int:
        return self.line.total

    @property
    def original_total(self) -> int:
        return self.line.original_unit_price * self.line.quantity

    @property
    def adjustment(self) -> int:
        """Negative for a discount, positive for a surcharge (staff price override)."""
        return self.total - self.original_total


@dataclass(frozen=True)
class CartSummary:
    cart: Cart
    lines: list[SummaryLine]
    breakdown: TaxBreakdown
    locale: str

    @property
    def subtotal(self) -> int:
        return self.breakdown.subtotal

    @property
    def taxes(self) -> list[TaxTotal]:
        return self.breakdown.taxes

    @property
    def total(self) -> int:
        return self.breakdown.total

    @property
    def currency(self) -> str:
        return self.cart.currency


def load_lines(cart: Cart) -> list[CartLine]:
    """The cart's lines with their articles and variants (three statements in all)."""
    return list(
        db.session.execute(
            sa.select(CartLine)
            .where(CartLine.cart_id == cart.id)
            .order_by(CartLine.id)
            .options(
                selectinload(CartLine.article).selectinload(Article.variants),
                selectinload(CartLine.variant),
            )
        ).scalars()
    )


def line_name(article: Article | None, variant: ArticleVariant | None, locale: str) -> str:
    if article is None:
        return _("Article no longer available")
    name = article.localized("name", locale)
    if variant is not None:
        name = f"{name} — {variant.localized('name', locale)}"
    return name


def summarize(cart: Cart, *, locale: str, lines: Sequence[CartLine] | None = None) -> CartSummary:
    """Lines, subtotal, each tax and the total, computed by the billing tax rules."""
    lines = list(lines) if lines is not None else load_lines(cart)
    categories = [line.article.tax_category if line.article else "exempt" for line in lines]
    rates: dict[str, Sequence[AppliedRate]] = dict(rates_by_category(set(categories), locale))
    breakdown = compute_taxes(
        [
            TaxableLine(amount=line.total, category=category)
            for line, category in zip(lines, categories, strict=True)
        ],
        rates,
    )
    return CartSummary(
        cart=cart,
        lines=[
            SummaryLine(
                line=line,
                article=line.article,
                variant=line.variant,
                name=line_name(line.article, line.variant, locale),
                taxes=line_taxes,
            )
            for line, line_taxes in zip(lines, breakdown.lines, strict=True)
        ],
        breakdown=breakdown,
        locale=locale,
    )
