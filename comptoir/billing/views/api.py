"""The orders API under ``/api/v1/o/{org}``: list and read orders, payments, refunds, cancel,
send the invoice.

Staff (API keys, or the admin session with its CSRF header) read every order of the
organization; a customer reads one order with its token in ``X-Order-Token``. POSTs that create
money records honour ``Idempotency-Key``: the same key with the same body answers the first
result again, with another body ``409 conflict``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _

from comptoir.billing import communications, idempotency, orders, payment_methods, payments, refunds
from comptoir.billing.models import Order, Payment, Refund
from comptoir.billing.payment_methods import CheckoutPayment
from comptoir.billing.presenters import order_dict, payment_dict, refund_dict
from comptoir.billing.schemas import (
    CancelSchema,
    OrderQuerySchema,
    OrderSchema,
    PaymentCreateSchema,
    PaymentResultSchema,
    RefundCreateSchema,
    RefundResultSchema,
    SendInvoiceResultSchema,
    SendInvoiceSchema,
)
from comptoir.platform.db import db
from comptoir.platform.errors import NotFoundError, ValidationError
from comptoir.platform.i18n import select_locale
from comptoir.platform.security import constant_time_equals, token_hash
from comptoir.tenants.api_support import (
    current_organization,
    organization_api_blueprint,
    page_schema,
    paginate,
    public_endpoint,
    require_permission,
)
from comptoir.tenants.context import current_actor, current_role
from comptoir.tenants.permissions import Permission, role_can

ORDER_TOKEN_HEADER = "X-Order-Token"  # noqa: S105 - a header name, not a secret
MAX_TOKEN_LENGTH = 200

blueprint = organization_api_blueprint(
    "orders",
    __name__,
    "Orders, their payments and refunds. Staff read and act on every order of the organization "
    "(reading and taking payments needs `sell`, refunds `refund`, cancelling `manage_orders`). "
    "A customer reads one order with the token answered at checkout, in `X-Order-Token`. "
    "States move forward only: `awaiting_payment` → `paid` → `partially_refunded` / "
    "`refunded`, or `cancelled`. `paid`, `refunded` and `balance` are derived from the payment "
    "and refund rows. Money-creating POSTs honour `Idempotency-Key`.",
)

IDEMPOTENCY_DOC = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Send the same key again (with the same body) to get the first answer again "
    "instead of a second record. Another body with a used key answers `409 conflict`.",
}
ORDER_TOKEN_DOC = {
    "in": "header",
    "name": ORDER_TOKEN_HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
    "description": "The order's token answered at checkout (customers). Staff omit it.",
}


# --------------------------------------------------------------------------- helpers


def _is_staff() -> bool:
    return role_can(current_role(), Permission.SELL)


def _order(order_id: int) -> Order:
    return orders.get_order(order_id)


def _order_answer(order: Order, **extra: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = OrderSchema().dump(order_dict(order, locale=select_locale(), **extra))
    return dumped


def _json(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def idempotent(body: dict[str, Any], run: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    """Run ``run`` once per ``Idempotency-Key`` and commit; replays answer the stored result."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        status, answer = run()
        db.session.commit()
        return _json(status, answer)
    claimed = idempotency.claim(
        organization_id=current_organization().id,
        key=key,
        request_fingerprint=idempotency.fingerprint(request.method, request.path, body),
    )
    if isinstance(claimed, idempotency.Replay):
        db.session.rollback()
        return _json(claimed.status, claimed.body)
    status, answer = run()
    idempotency.remember(claimed, status=status, body=answer)
    db.session.commit()
    return _json(status, answer)


def _day_start(day: Any) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time.min, tzinfo=UTC)


# --------------------------------------------------------------------------- reading


@blueprint.route("/orders", methods=["GET"])
@require_permission(Permission.SELL)
@blueprint.query_arguments(OrderQuerySchema)
@blueprint.response(200, page_schema(OrderSchema))
def list_orders(arguments: dict[str, Any]) -> Response:
    """List orders

    Newest first. Filters: `state`, `method` (chosen at checkout or used by a payment),
    `pending` (awaiting payment or a payment in progress), `counter_sale`, the days
    `date_from` to `date_to` (UTC), and `q` (name, e-mail address or order number).
    """
    date_to = _day_start(arguments.get("date_to"))
    query = orders.orders_query(
        state=arguments.get("state"),
        method=arguments.get("method"),
        q=arguments["q"],
        date_from=_day_start(arguments.get("date_from")),
        date_to=date_to + timedelta(days=1) if date_to is not None else None,
        pending=arguments["pending"],
        counter_sale=arguments["counter_sale"],
    )
    page = paginate(query, page=arguments["page"], per_page=arguments["per_page"])
    return _json(
        200,
        {
            **page,
            "items": [_order_answer(order) for order in page["items"]],
        },
    )


@blueprint.route("/orders/<id:order_id>", methods=["GET"])
@public_endpoint
@blueprint.doc(parameters=[ORDER_TOKEN_DOC])
@blueprint.response(200, OrderSchema)
def get_order(order_id: int) -> Response:
    """Get an order

    Staff of the organization, or the customer with the order's token in `X-Order-Token`.
    Anyone else gets `404`.
    """
    presented = request.headers.get(ORDER_TOKEN_HEADER)
    if presented is not None and len(presented) > MAX_TOKEN_LENGTH:
        message = _("This is not an order token.")
        raise ValidationError(message, fields={ORDER_TOKEN_HEADER: [message]})
    order = db.session.get(Order, order_id)
    if order is None:
        raise NotFoundError(_("Order not found."))
    if not _is_staff():
        presented = presented or ""
        if not presented or not constant_time_equals(order.token_hash, token_hash(presented)):
            raise NotFoundError(_("Order not found."))
    return _json(200, _order_answer(order))


# --------------------------------------------------------------------------- money


@blueprint.route("/orders/<id:order_id>/payments", methods=["POST"])
@require_permission(Permission.SELL)
@blueprint.doc(parameters=[IDEMPOTENCY_DOC])
@blueprint.arguments(PaymentCreateSchema)
@blueprint.response(201, PaymentResultSchema)
@blueprint.alt_response(409, description="`conflict`: the order is cancelled or paid already.")
def create_payment(values: dict[str, Any], order_id: int) -> Response:
    """Take a payment

    Staff record money received: cash (with `cash_tendered`; the change due is computed),
    a cheque or transfer (`other`, with its `reference`), or an offline or e-Transfer payment
    received (`received_at`, `reference`). `amount` defaults to the balance and may not pass it;
    several payments settle one order (split tender). The order becomes `paid` when nothing is
    owed any more. `card` starts a new card attempt instead (the previous one is cancelled at
    Stripe): a `processing` payment answered with a `next_action` to pay it with Stripe.js on
    the organization's connected account; it succeeds when Stripe says so.
    """
    order = _order(order_id)
    registered = payment_methods.get(values["method"])

    def run() -> tuple[int, dict[str, Any]]:
        next_action = None
        if registered is not None and registered.at_payment is not None:
            # A payment completed later by its provider (card): a new attempt, not a record.
            outcome = registered.at_payment(
                order,
                current_actor(),
                values["amount"],
                CheckoutPayment(reader_id=values["reader_id"]),
            )
            assert outcome.payment is not None
            payment: Payment = outcome.payment
            next_action = outcome.next_action
        else:
            payment = payments.record_payment(
                organization=current_organization(),
                actor=current_actor(),
                order=order,
                method=values["method"],
                amount=values["amount"],
                reference=values["reference"],
                cash_tendered=values["cash_tendered"],
                received_at=values["received_at"],
            )
        answer = PaymentResultSchema().dump(
            {
                **payment_dict(payment),
                "order": order_dict(order, locale=select_locale()),
                "next_action": next_action,
            }
        )
        return 201, answer

    return idempotent(request.get_json(silent=True) or {}, run)


@blueprint.route("/orders/<id:order_id>/refunds", methods=["POST"])
@require_permission(Permission.REFUND)
@blueprint.doc(parameters=[IDEMPOTENCY_DOC])
@blueprint.arguments(RefundCreateSchema)
@blueprint.response(201, RefundResultSchema)
@blueprint.alt_response(409, description="`conflict`: the order is not paid (cancel it instead).")
def create_refund(values: dict[str, Any], order_id: int) -> Response:
    """Refund

    Give money back for an `amount`, or for lines: `line_ids` (what is left of each line) or
    `lines` with a quantity each. At most what was paid and not refunded yet. A credit note is
    issued on the invoice and mailed once; returned units go back to stock unless
    `restock` is false. Cash is paid back at once; an e-Transfer sent back needs its `reference`.
    A card or reader payment is refunded through Stripe: the refund is `processing` until Stripe
    confirms it, and its credit note, the stock and the e-mail follow then. An Interac debit
    taken on a reader stays `pending`: it is refunded with the card on a reader, from the
    order's page.
    """
    order = _order(order_id)
    lines = values["lines"]
    if values["line_ids"] is not None:
        lines = [*(lines or []), *({"line_id": line_id} for line_id in values["line_ids"])]

    def run() -> tuple[int, dict[str, Any]]:
        refund: Refund = refunds.refund_order(
            organization=current_organization(),
            actor=current_actor(),
            order=order,
            reason=values["reason"],
            amount=values["amount"],
            lines=lines,
            method=values["method"],
            reference=values["reference"],
            restock=values["restock"],
        )
        answer = RefundResultSchema().dump(
            {**refund_dict(refund), "order": order_dict(order, locale=select_locale())}
        )
        return 201, answer

    return idempotent(request.get_json(silent=True) or {}, run)


@blueprint.route("/orders/<id:order_id>/cancel", methods=["POST"])
@require_permission(Permission.MANAGE_ORDERS)
@blueprint.arguments(CancelSchema)
@blueprint.response(200, OrderSchema)
@blueprint.alt_response(409, description="`conflict`: the order is refunded already.")
def cancel_order(values: dict[str, Any], order_id: int) -> Response:
    """Cancel an order

    What was paid goes back (by `method`, default the last payment's; `reference` for an
    e-Transfer sent back), the rest of the invoice is credited, the units return to stock, and
    the cancellation e-mail goes out once. Cancelling a cancelled order changes nothing.
    """
    order = refunds.cancel_order(
        organization=current_organization(),
        actor=current_actor(),
        order=_order(order_id),
        reason=values["reason"],
        method=values["method"],
        reference=values["reference"],
    )
    db.session.commit()
    return _json(200, _order_answer(order))


@blueprint.route("/orders/<id:order_id>/send-invoice", methods=["POST"])
@require_permission(Permission.SELL)
@blueprint.arguments(SendInvoiceSchema)
@blueprint.response(202, SendInvoiceResultSchema)
def send_invoice(values: dict[str, Any], order_id: int) -> Response:
    """E-mail the invoice

    The invoice's PDF is sent to `email` (in `locale`, default the order's language) by a job.
    """
    address = communications.request_invoice_mail(
        organization=current_organization(),
        actor=current_actor(),
        order=_order(order_id),
        to=values["email"],
        locale=values["locale"],
    )
    db.session.commit()
    return _json(202, {"email": address, "queued": True})
