"""The payment method registry: a name, who may use it, and what it does at checkout.

Each method is a :class:`PaymentMethod` registered under one of the API's method names. The
checkout asks the registry which methods an audience may choose (customers: only those the
shop offers *and* the registry allows customers), then calls the method's ``at_checkout`` inside
the checkout's transaction. Staff record later payments (split tender, "mark received") with
methods that say ``recordable``.

Card and Stripe Terminal payments plug in by registering ``card`` and ``terminal`` with their own
handlers (creating a ``processing`` payment and answering a ``next_action`` for the page); until
then they are unknown here, so no shop can offer them and no caller can choose them. ``card``
(:mod:`comptoir.billing.stripe_card`) is registered below; staff start later attempts of such
methods through ``at_payment`` instead of recording them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l

from comptoir.billing.models import Method

if TYPE_CHECKING:
    from comptoir.billing.models import Order, Payment, Refund
    from comptoir.platform.audit import Actor


class Audience(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"


@dataclass(frozen=True)
class CheckoutPayment:
    """What the caller said about paying, besides the method (all optional, checked by methods)."""

    cash_tendered: Any = None
    reference: str = ""
    reader_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckoutOutcome:
    """What a method did at checkout: the payment it recorded, or what the page must do next."""

    payment: Payment | None = None
    next_action: dict[str, Any] | None = None


# (order, actor, request) -> outcome; runs inside the checkout's transaction, may raise DomainError.
CheckoutHandler = Callable[["Order", "Actor", CheckoutPayment], CheckoutOutcome]
# (order, actor, amount or None for what is left, request) -> outcome: staff start a payment that
# completes later (a card attempt) on an existing order; may raise DomainError.
PaymentStarter = Callable[["Order", "Actor", "int | None", CheckoutPayment], CheckoutOutcome]
# (refund, payment refunded, actor): start giving the money back through the provider; the refund
# row is ``pending`` and the provider moves it. Methods without one record refunds as done.
RefundHandler = Callable[["Refund", "Payment | None", "Actor"], None]


@dataclass(frozen=True)
class PaymentMethod:
    name: str
    label: Any  # a lazy string
    audiences: frozenset[Audience]
    # The money is in hand when the checkout ends (cash, a cheque): the order may be paid at once.
    immediate: bool
    # Staff may record a payment by this method on an order (split tender, "mark received").
    recordable: bool
    # The order waits for money sent later; the scheduler reminds and cancels when unpaid.
    sends_reminders: bool = False
    # A reference (cheque number, transfer reference) is required when recorded.
    reference_required: bool = False
    # A reference (the e-Transfer sent back, the cheque) is required when money is given back.
    refund_reference_required: bool = False
    at_checkout: CheckoutHandler | None = None
    at_payment: PaymentStarter | None = None
    at_refund: RefundHandler | None = None

    def allows(self, audience: Audience) -> bool:
        return audience in self.audiences


_registry: dict[str, PaymentMethod] = {}


def register(method: PaymentMethod) -> PaymentMethod:
    if method.name not in {m.value for m in Method}:
        message = f"{method.name!r} is not a payment method the API knows"
        raise ValueError(message)
    existing = _registry.get(method.name)
    if existing is not None and existing != method:
        message = f"payment method {method.name!r} is registered twice"
        raise RuntimeError(message)
    _registry[method.name] = method
    return method


def unregister(name: str) -> None:
    """Tests and the demo only: forget a method."""
    _registry.pop(name, None)


def get(name: str) -> PaymentMethod | None:
    return _registry.get(name)


def registered() -> list[PaymentMethod]:
    return [_registry[m.value] for m in Method if m.value in _registry]


def available(audience: Audience, offered: Iterable[str] | None = None) -> list[PaymentMethod]:
    """The methods ``audience`` may choose, in the API's order.

    Customers get only the shop's ``offered`` methods that allow customers. Staff get those too,
    plus every staff method (cash, pay later, other …).
    """
    offered_names = set(offered or ())
    chosen = []
    for method in registered():
        if audience is Audience.CUSTOMER:
            if method.allows(Audience.CUSTOMER) and method.name in offered_names:
                chosen.append(method)
        elif method.allows(Audience.STAFF) and (
            method.name in offered_names or not method.allows(Audience.CUSTOMER)
        ):
            chosen.append(method)
    return chosen


def shop_offerable() -> list[PaymentMethod]:
    """Methods a shop's Payment tab may offer to customers (card appears once registered)."""
    return [method for method in registered() if method.allows(Audience.CUSTOMER)]


def _cash_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    from comptoir.billing import payments

    return payments.cash_at_checkout(order, actor, request)


def _other_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    from comptoir.billing import payments

    return payments.other_at_checkout(order, actor, request)


def _card_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    from comptoir.billing import stripe_card

    return stripe_card.card_at_checkout(order, actor, request)


def _card_at_payment(
    order: Order, actor: Actor, amount: int | None, request: CheckoutPayment
) -> CheckoutOutcome:
    from comptoir.billing import stripe_card

    return stripe_card.card_at_payment(order, actor, amount, request)


def _terminal_at_checkout(order: Order, actor: Actor, request: CheckoutPayment) -> CheckoutOutcome:
    from comptoir.billing import stripe_terminal_payments

    return stripe_terminal_payments.at_checkout(order, actor, request)


def _terminal_at_payment(
    order: Order, actor: Actor, amount: int | None, request: CheckoutPayment
) -> CheckoutOutcome:
    from comptoir.billing import stripe_terminal_payments

    return stripe_terminal_payments.at_payment(order, actor, amount, request)


def _refund_through_stripe(refund: Refund, payment: Payment | None, actor: Actor) -> None:
    from comptoir.billing import stripe_refunds

    stripe_refunds.refund_through_stripe(refund, payment, actor)


def _builtin() -> None:
    both = frozenset({Audience.CUSTOMER, Audience.STAFF})
    staff = frozenset({Audience.STAFF})
    for method in (
        PaymentMethod(
            name=Method.OFFLINE.value,
            label=_l("Pay in person"),
            audiences=both,
            immediate=False,
            recordable=True,
        ),
        PaymentMethod(
            name=Method.ETRANSFER.value,
            label=_l("Interac e-Transfer"),
            audiences=both,
            immediate=False,
            recordable=True,
            sends_reminders=True,
            refund_reference_required=True,
        ),
        PaymentMethod(
            name=Method.CARD.value,
            label=_l("Card"),
            audiences=both,
            immediate=False,
            recordable=False,
            at_checkout=_card_at_checkout,
            at_payment=_card_at_payment,
            at_refund=_refund_through_stripe,
        ),
        PaymentMethod(
            name=Method.TERMINAL.value,
            label=_l("Card or Interac debit on a reader"),
            audiences=staff,
            immediate=False,
            recordable=False,
            at_checkout=_terminal_at_checkout,
            at_payment=_terminal_at_payment,
            at_refund=_refund_through_stripe,
        ),
        PaymentMethod(
            name=Method.CASH.value,
            label=_l("Cash"),
            audiences=staff,
            immediate=True,
            recordable=True,
            at_checkout=_cash_at_checkout,
        ),
        PaymentMethod(
            name=Method.LATER.value,
            label=_l("Pay later"),
            audiences=staff,
            immediate=False,
            recordable=False,
        ),
        PaymentMethod(
            name=Method.OTHER.value,
            label=_l("Other (cheque, transfer)"),
            audiences=staff,
            immediate=True,
            recordable=True,
            reference_required=True,
            refund_reference_required=True,
            at_checkout=_other_at_checkout,
        ),
    ):
        register(method)


_builtin()
