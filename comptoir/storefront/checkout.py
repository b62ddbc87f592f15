"""The checkout: steps 2 (the form) and 3 (payment) of a cart, ending in billing's order.

Step 2 keeps the checked answers in a :class:`CheckoutDraft` (server side: a drawn signature
does not fit in a cookie). Step 3 — the page, or ``POST /carts/{id}/checkout`` in one call —
runs :func:`checkout` in one transaction:

1. lock the cart row (a second submit of the same cart waits here, then finds it checked out);
2. choose the form and check the answers again, the payment method against the audience;
3. find or create the customer by e-mail (nothing for a counter sale);
4. turn the holds into sales under the stock rows' locks (:func:`holds.sell_cart`): when the
   cart expired meanwhile and the stock is gone, ``out_of_stock`` and nothing is half done;
5. :func:`comptoir.billing.orders.place_order` with plain line data (names, prices,
   overrides, tax categories; billing computes each line's taxes with the same rules as the cart);
6. mark the cart checked out.

Billing announces refunds and cancellations with signals; :func:`restock` listens and gives the
units back to the catalog in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import Mapped, mapped_column

from comptoir.billing import payment_methods
from comptoir.billing.etransfer import EtransferSettings
from comptoir.billing.orders import LineInput, NewOrder, PlacedOrder, place_order
from comptoir.billing.payment_methods import Audience, CheckoutPayment
from comptoir.billing.signals import ReturnedUnits, order_cancelled, order_refunded
from comptoir.platform.audit import Actor
from comptoir.platform.db import (
    BigId,
    JsonColumn,
    Model,
    TenantMixin,
    TimestampMixin,
    UtcDateTime,
    db,
    tenant_foreign_key,
    utcnow,
)
from comptoir.platform.errors import ConflictError, ForbiddenError, ValidationError
from comptoir.platform.security import new_token
from comptoir.storefront import carts, holds
from comptoir.storefront.cart_models import Cart, CartLine, CartStatus
from comptoir.storefront.checkout_forms import (
    CleanAnswers,
    Selection,
    select_form,
    validate_answers,
)
from comptoir.storefront.models import Article, ArticleVariant, Shop
from comptoir.tenants import services as tenant_services
from comptoir.tenants.models import Customer, Organization


class CheckoutDraft(TenantMixin, TimestampMixin, Model):
    """What step 2 checked, until step 3 places the order (one per cart)."""

    __tablename__ = "checkout_drafts"
    __table_args__ = TenantMixin.tenant_table_args(
        tenant_foreign_key(["cart_id"], "carts", ondelete="CASCADE"),
        sa.UniqueConstraint("organization_id", "cart_id", name="uq_checkout_drafts_cart"),
    )

    cart_id: Mapped[int] = mapped_column(BigId, nullable=False)
    # The form staff switched to (None: the one the cart's articles or the shop choose).
    chosen_form_id: Mapped[int | None] = mapped_column(BigId)
    counter_sale: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    customer_id: Mapped[int | None] = mapped_column(BigId)
    # The answers as typed (to fill the form again) and checked at step 2.
    answers: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The one-time key of the step-3 form: a second submit of the same page answers the first.
    nonce: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=utcnow)


# --------------------------------------------------------------------------- step 2


def draft_of(cart: Cart) -> CheckoutDraft | None:
    return db.session.execute(
        sa.select(CheckoutDraft).where(CheckoutDraft.cart_id == cart.id)
    ).scalar_one_or_none()


def form_for(
    cart: Cart, shop: Shop, *, chosen_id: int | None = None, lines: list[CartLine] | None = None
) -> Selection:
    """The checkout form of ``cart`` (``chosen_id``: a staff member switched to another)."""
    lines = lines if lines is not None else carts.load_lines(cart)
    article_forms = [
        (line.article.checkout_form_id, line.article.localized("name", cart.locale))
        for line in lines
        if line.article is not None
    ]
    return select_form(
        article_forms=article_forms,
        shop_default_id=shop.default_checkout_form_id,
        chosen_id=chosen_id,
    )


def _check_staff_only(
    *, is_staff: bool, counter_sale: bool, customer_id: Any, chosen: bool
) -> None:
    if is_staff:
        return
    fields: dict[str, list[str]] = {}
    message = _("Only staff of this organization may do this.")
    if counter_sale:
        fields["counter_sale"] = [message]
    if customer_id is not None:
        fields["customer_id"] = [message]
    if chosen:
        fields["checkout_form_id"] = [message]
    if fields:
        raise ForbiddenError(message, fields=fields)


def _customer_for(
    *,
    organization: Organization,
    actor: Actor,
    clean: CleanAnswers,
    counter_sale: bool,
    customer_id: Any,
) -> Customer | None:
    if counter_sale:
        if customer_id is not None:
            message = _("A counter sale has no customer.")
            raise ValidationError(message, fields={"customer_id": [message]})
        return None
    if customer_id is not None:
        if not isinstance(customer_id, int) or isinstance(customer_id, bool):
            message = _("Choose a customer.")
            raise ValidationError(message, fields={"customer_id": [message]})
        return tenant_services.get_customer(customer_id)
    assert clean.owner is not None
    return tenant_services.find_or_create_customer(
        organization=organization,
        actor=actor,
        first_name=clean.owner.first_name,
        last_name=clean.owner.last_name,
        email=clean.owner.email,
        phone=clean.owner.phone,
    )


def save_information(
    *,
    organization: Organization,
    actor: Actor,
    cart: Cart,
    shop: Shop,
    is_staff: bool,
    answers: dict[str, Any],
    counter_sale: bool = False,
    customer_id: int | None = None,
    chosen_form_id: int | None = None,
    ip: str = "",
) -> CheckoutDraft:
    """Step 2: check the answers now (clear errors, nothing kept) and keep them for step 3."""
    _check_staff_only(
        is_staff=is_staff,
        counter_sale=counter_sale,
        customer_id=customer_id,
        chosen=chosen_form_id is not None,
    )
    cart = carts._lock(cart)
    if cart.status is CartStatus.CHECKED_OUT:
        raise ConflictError(_("This cart was already checked out."))
    lines = carts.load_lines(cart)
    if not lines:
        message = _("The cart is empty.")
        raise ValidationError(message, fields={"lines": [message]})
    selection = form_for(cart, shop, chosen_id=chosen_form_id, lines=lines)
    validate_answers(
        selection, answers, capture_customer=not counter_sale, ip=ip, locale=cart.locale
    )
    if customer_id is not None and not counter_sale:
        tenant_services.get_customer(customer_id)
    draft = draft_of(cart)
    if draft is None:
        draft = CheckoutDraft(organization_id=organization.id, cart_id=cart.id)
        db.session.add(draft)
    draft.chosen_form_id = chosen_form_id
    draft.counter_sale = counter_sale
    draft.customer_id = None if counter_sale else customer_id
    draft.answers = {} if counter_sale else dict(answers)
    draft.completed_at = utcnow()
    draft.nonce = new_token(24)
    db.session.flush()
    return draft


# --------------------------------------------------------------------------- step 3


@dataclass(frozen=True)
class CheckoutRequest:
    payment_method: str
    answers: dict[str, Any] | None = None
    checkout_form_id: int | None = None
    customer_id: int | None = None
    counter_sale: bool = False
    cash_tendered: Any = None
    reference: str = ""
    reader_id: str | None = None


def _line_inputs(lines: list[CartLine], locale: str) -> list[LineInput]:
    inputs = []
    for line in lines:
        article: Article | None = line.article
        variant: ArticleVariant | None = line.variant
        sku = (variant.sku if variant is not None else None) or (article.sku if article else None)
        inputs.append(
            LineInput(
                name=carts.line_name(article, variant, locale),
                quantity=line.quantity,
                unit_price=line.unit_price,
                original_unit_price=line.original_unit_price,
                override_reason=line.price_override_reason or "",
                tax_category=article.tax_category if article is not None else "exempt",
                sku=sku or "",
                article_id=line.article_id,
                variant_id=line.variant_id,
            )
        )
    return inputs


def checkout(
    *,
    organization: Organization,
    actor: Actor,
    cart: Cart,
    shop: Shop,
    is_staff: bool,
    request: CheckoutRequest,
    ip: str = "",
) -> PlacedOrder:
    """Place the cart's order (steps 2 and 3 at once); see the module's docstring."""
    audience = Audience.STAFF if is_staff else Audience.CUSTOMER
    cart = carts._lock(cart)
    if cart.status is CartStatus.CHECKED_OUT:
        raise ConflictError(_("This cart was already checked out."))
    lines = carts.load_lines(cart)
    if not lines:
        message = _("The cart is empty.")
        raise ValidationError(message, fields={"lines": [message]})
    selection = form_for(cart, shop, lines=lines)
    chosen = request.checkout_form_id is not None and (
        selection.form is None or request.checkout_form_id != selection.form.id
    )
    _check_staff_only(
        is_staff=is_staff,
        counter_sale=request.counter_sale,
        customer_id=request.customer_id,
        chosen=chosen,
    )
    if chosen:
        selection = form_for(cart, shop, chosen_id=request.checkout_form_id, lines=lines)
    # The method first: a customer asking for cash learns it before retyping anything.
    from comptoir.billing.orders import check_method

    check_method(request.payment_method, audience, shop.payment_methods)
    clean = validate_answers(
        selection,
        request.answers,
        capture_customer=not request.counter_sale,
        ip=ip,
        locale=cart.locale,
    )
    customer = _customer_for(
        organization=organization,
        actor=actor,
        clean=clean,
        counter_sale=request.counter_sale,
        customer_id=request.customer_id,
    )
    holds.sell_cart(cart=cart, lines=lines)
    placed_at = utcnow()
    etransfer = EtransferSettings.from_dict(shop.etransfer)
    placed = place_order(
        organization=organization,
        actor=actor,
        new=NewOrder(
            lines=_line_inputs(lines, cart.locale),
            locale=cart.locale,
            method=request.payment_method,
            audience=audience,
            offered_methods=list(shop.payment_methods),
            payment=CheckoutPayment(
                cash_tendered=request.cash_tendered,
                reference=request.reference,
                reader_id=request.reader_id,
            ),
            customer=customer,
            owner=clean.owner,
            counter_sale=request.counter_sale,
            form=clean.record(selection),
            shop_id=shop.id,
            payment_details=(
                {"etransfer": etransfer.to_dict()} if request.payment_method == "etransfer" else {}
            ),
            remind_at=etransfer.remind_at(placed_at),
            expires_at=etransfer.expires_at(placed_at),
        ),
    )
    cart.status = CartStatus.CHECKED_OUT
    if customer is not None:
        cart.customer_id = customer.id
    db.session.execute(
        sa.delete(CheckoutDraft)
        .where(CheckoutDraft.cart_id == cart.id)
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return placed


def checkout_from_draft(
    *,
    organization: Organization,
    actor: Actor,
    cart: Cart,
    shop: Shop,
    is_staff: bool,
    payment_method: str,
    cash_tendered: Any = None,
    reference: str = "",
    reader_id: str | None = None,
    ip: str = "",
) -> PlacedOrder:
    """Step 3 of the pages: the answers kept at step 2, and the payment chosen now."""
    draft = draft_of(cart)
    if draft is None or draft.completed_at is None:
        message = _("Fill in your information first.")
        raise ValidationError(message, fields={"answers": [message]})
    return checkout(
        organization=organization,
        actor=actor,
        cart=cart,
        shop=shop,
        is_staff=is_staff,
        request=CheckoutRequest(
            payment_method=payment_method,
            answers=draft.answers,
            checkout_form_id=draft.chosen_form_id,
            customer_id=draft.customer_id,
            counter_sale=draft.counter_sale,
            cash_tendered=cash_tendered,
            reference=reference,
            reader_id=reader_id,
        ),
        ip=ip,
    )


def methods_for(shop: Shop, *, is_staff: bool) -> list[payment_methods.PaymentMethod]:
    audience = Audience.STAFF if is_staff else Audience.CUSTOMER
    return payment_methods.available(audience, shop.payment_methods)


# --------------------------------------------------------------------------- restocking


def restock(returned: list[ReturnedUnits]) -> None:
    """Give units back to the catalog: ``sold`` shrinks (never below zero)."""
    for units in sorted(
        returned, key=lambda u: (u.variant_id is not None, u.variant_id or 0, u.article_id or 0)
    ):
        if units.quantity <= 0:
            continue
        if units.variant_id is not None:
            table: Any = ArticleVariant
            row_id = units.variant_id
        elif units.article_id is not None:
            table = Article
            row_id = units.article_id
        else:
            continue
        db.session.execute(
            sa.update(table)
            .where(table.id == row_id)
            .values(
                sold=sa.case((table.sold < units.quantity, 0), else_=table.sold - units.quantity)
            )
            .execution_options(synchronize_session=False)
        )


def _on_units_returned(sender: Any, **extra: Any) -> None:
    restock(list(extra.get("returned") or []))


def connect_signals() -> None:
    """Listen to billing's returns (called once by the app factory; connecting twice is a no-op)."""
    order_refunded.connect(_on_units_returned, weak=False)
    order_cancelled.connect(_on_units_returned, weak=False)
