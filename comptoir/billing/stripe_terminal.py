"""Stripe Terminal readers: registered on the organization's connected account, listed, renamed,
removed, and re-read from Stripe.

Readers are registered at one Terminal location made from the organization's address (its id
kept in ``StripeAccount.terminal_location_id``). The ``TerminalReader`` rows mirror them so that
pages list readers without a round trip and a reader's events find their payment.

A reader is busy while its action is in progress. ``TerminalReader.payment_id`` names the payment
it is taking and is cleared when that action ends (:func:`refresh_reader`, from an event or from
polling: Stripe is the truth); ``refund_id`` is an in-person refund's, kept by the refunds side
(see :func:`on_refund_action`). Payments taken on readers:
:mod:`comptoir.billing.stripe_terminal_payments`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from comptoir.billing import stripe_payments
from comptoir.billing.models import MoneyState, Payment
from comptoir.billing.stripe_gateway import (
    Address,
    InvalidRequestError,
    PaymentIntent,
    Reader,
    ReaderAction,
    StripeGateway,
    StripeGatewayError,
    StripeNotFoundError,
    StripeUnavailableError,
)
from comptoir.billing.stripe_models import StripeAccount, TerminalReader
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, DomainError, NotFoundError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

logger = logging.getLogger(__name__)

MAX_LABEL = 64
MAX_CODE = 100
IN_PROGRESS = "in_progress"
DEVICE_NAMES = {
    "bbpos_wisepos_e": "BBPOS WisePOS E",
    "bbpos_chipper2x": "BBPOS Chipper 2X BT",
    "bbpos_wisepad3": "BBPOS WisePad 3",
    "stripe_m2": "Stripe Reader M2",
    "stripe_s700": "Stripe Reader S700",
    "stripe_s710": "Stripe Reader S710",
    "verifone_P400": "Verifone P400",
    "simulated_wisepos_e": "BBPOS WisePOS E",
    "simulated_stripe_s700": "Stripe Reader S700",
    "simulated_stripe_s710": "Stripe Reader S710",
}
STATUS_LABELS = {"online": _l("Online"), "offline": _l("Offline")}


class StripeUnreachableError(DomainError):
    """Stripe could not be reached; nothing changed, trying again later is right."""

    status = 503
    code = "stripe_unavailable"


class ReaderNotReadyError(ConflictError):
    """The reader cannot take this payment now: busy, offline or gone."""


def refusal(error: StripeGatewayError, field: str | None = None) -> DomainError:
    message = error.user_message
    fields = {field: [message]} if field else None
    if isinstance(error, StripeUnavailableError):
        return StripeUnreachableError(message, fields=fields)
    return ConflictError(message, fields=fields)


# --------------------------------------------------------------------------- presenting


def device_name(device_type: str) -> str:
    name = DEVICE_NAMES.get(device_type, device_type or "?")
    if device_type.startswith("simulated_"):
        return _("%(device)s (simulated)", device=name)
    return name


def status_label(status: str) -> str:
    label = STATUS_LABELS.get(status)
    return str(label) if label is not None else _("Unknown")


def is_busy(reader: TerminalReader) -> bool:
    return (reader.action or {}).get("status") == IN_PROGRESS


def _action_dict(action: ReaderAction | None, *, intent_status: str = "") -> dict[str, Any]:
    """What we keep of a reader's action, and when Stripe was last asked (for the polling)."""
    kept: dict[str, Any] = {"checked_at": int(time.time())}
    if action is not None:
        kept.update(
            type=action.type,
            status=action.status,
            failure_code=action.failure_code or "",
            failure_message=action.failure_message or "",
            payment_intent=action.payment_intent or "",
            refund=action.refund or "",
        )
    if intent_status:
        kept["intent_status"] = intent_status
    return kept


def apply_reader(row: TerminalReader, reader: Reader) -> None:
    row.status = reader.status or ""
    row.label = reader.label or row.label
    row.device_type = reader.device_type or row.device_type
    row.serial_number = reader.serial_number or row.serial_number
    row.location_id = reader.location or row.location_id
    intent_status = (row.action or {}).get("intent_status", "")
    same_action = (
        reader.action is not None
        and reader.action.payment_intent
        and reader.action.payment_intent == (row.action or {}).get("payment_intent")
    )
    row.action = _action_dict(reader.action, intent_status=intent_status if same_action else "")


# --------------------------------------------------------------------------- finding readers


def list_readers() -> list[TerminalReader]:
    """The readers of the organization in scope, by label."""
    return list(
        db.session.execute(
            sa.select(TerminalReader).order_by(TerminalReader.label, TerminalReader.id)
        ).scalars()
    )


def reader_query(value: int | str | None) -> sa.Select[Any] | None:
    text = str(value if value is not None else "").strip()
    if text.isdigit() and len(text) < 19:
        return sa.select(TerminalReader).where(TerminalReader.id == int(text))
    if text.startswith("tmr_") and len(text) <= 255:
        return sa.select(TerminalReader).where(TerminalReader.reader_id == text)
    return None


def get_reader(value: int | str | None) -> TerminalReader:
    """A reader of the organization in scope, by our id or Stripe's (``tmr_…``); else 404."""
    query = reader_query(value)
    reader = db.session.execute(query).scalar_one_or_none() if query is not None else None
    if reader is None:
        raise NotFoundError(_("Reader not found."))
    return reader


def chosen_reader(value: int | str | None, *, field: str = "reader_id") -> TerminalReader:
    """The reader a cashier chose for a payment, or a clear error beside the field."""
    if value is None or not str(value).strip():
        message = _("Choose a reader.")
        raise ValidationError(message, fields={field: [message]})
    try:
        return get_reader(value)
    except NotFoundError:
        message = _("Choose one of the organization's readers.")
        raise ValidationError(message, fields={field: [message]}) from None


def lock_reader(reader: TerminalReader) -> TerminalReader:
    locked = db.session.execute(
        sa.select(TerminalReader)
        .where(TerminalReader.id == reader.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if locked is None:
        raise NotFoundError(_("Reader not found."))
    return locked


def reader_taking(payment: Payment) -> TerminalReader | None:
    """The reader working on ``payment`` right now, if any."""
    return db.session.execute(
        sa.select(TerminalReader).where(TerminalReader.payment_id == payment.id)
    ).scalar_one_or_none()


# --------------------------------------------------------------------------- managing readers


def _label(value: Any) -> str:
    label = " ".join(str(value or "").split())
    if not label:
        message = _("Give the reader a name (where it is, for example “Front desk”).")
        raise ValidationError(message, fields={"label": [message]})
    if len(label) > MAX_LABEL:
        message = _("Use at most %(count)d characters.", count=MAX_LABEL)
        raise ValidationError(message, fields={"label": [message]})
    return label


def _registration_code(value: Any) -> str:
    code = str(value or "").strip()
    if not code:
        message = _("Enter the registration code the reader shows.")
        raise ValidationError(message, fields={"registration_code": [message]})
    if len(code) > MAX_CODE or any(character.isspace() for character in code):
        raise _bad_code()
    return code


def _bad_code() -> ValidationError:
    message = _(
        "This registration code is not valid or has expired. On the reader, generate a new "
        "pairing code (Settings, then Generate pairing code) and type it here."
    )
    return ValidationError(message, fields={"registration_code": [message]})


def _location_address(organization: Organization) -> Address:
    return Address(
        country=organization.country or "CA",
        line1=organization.address_line1 or None,
        line2=organization.address_line2 or None,
        city=organization.city or None,
        postal_code=organization.postal_code or None,
        state=organization.province or None,
    )


def ensure_location(
    *, organization: Organization, actor: Actor, gateway: StripeGateway, replacing: str = ""
) -> StripeAccount:
    """The connected account, with its Terminal location made from the organization's address.

    ``replacing``: the id of a location found deleted at Stripe, which this one replaces.
    """
    account = stripe_payments.chargeable_account(organization)
    account = db.session.execute(
        sa.select(StripeAccount)
        .where(StripeAccount.id == account.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if account.terminal_location_id:
        return account
    # A replacement gets a key of its own: the first one's would replay the deleted location.
    key = f"terminal-location-{account.account_id}" + (f"-after-{replacing}" if replacing else "")
    try:
        location = gateway.create_terminal_location(
            account.account_id,
            display_name=organization.name[:1000],
            address=_location_address(organization),
            idempotency_key=key,
        )
    except InvalidRequestError as error:
        message = _(
            "Stripe needs the organization's full address to place its readers: %(reason)s",
            reason=error.user_message,
        )
        raise ValidationError(message, fields={"address": [message]}) from error
    except StripeGatewayError as error:
        raise refusal(error) from error
    account.terminal_location_id = location.id
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="stripe.terminal_location_created",
        target=account,
        after={"terminal_location_id": location.id, "display_name": location.display_name},
    )
    return account


def register_reader(
    *,
    organization: Organization,
    actor: Actor,
    gateway: StripeGateway,
    registration_code: Any,
    label: Any,
) -> TerminalReader:
    """Register a reader with the code it shows, at the organization's location."""
    ensure(actor.role, Permission.MANAGE_SHOPS)
    name = _label(label)
    code = _registration_code(registration_code)
    account = ensure_location(organization=organization, actor=actor, gateway=gateway)
    try:
        reader = _register_at_stripe(
            organization=organization,
            actor=actor,
            gateway=gateway,
            account=account,
            code=code,
            name=name,
        )
    except StripeGatewayError as error:
        if isinstance(error, InvalidRequestError) and error.param == "registration_code":
            raise _bad_code() from error
        raise refusal(error, "registration_code") from error
    row = TerminalReader(
        organization_id=organization.id,
        reader_id=reader.id,
        label=reader.label or name,
        location_id=reader.location or account.terminal_location_id,
        device_type=reader.device_type,
        serial_number=reader.serial_number,
        status=reader.status or "",
        action=_action_dict(reader.action),
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="terminal_reader.registered",
        target=row,
        after={
            "reader_id": row.reader_id,
            "label": row.label,
            "device_type": row.device_type,
            "serial_number": row.serial_number,
        },
    )
    return row


def _register_at_stripe(
    *,
    organization: Organization,
    actor: Actor,
    gateway: StripeGateway,
    account: StripeAccount,
    code: str,
    name: str,
) -> Reader:
    try:
        return gateway.register_reader(
            account.account_id,
            registration_code=code,
            label=name,
            location=account.terminal_location_id,
        )
    except StripeNotFoundError as error:
        if error.param != "location":
            raise
    # The location was deleted at Stripe (from its dashboard): make a new one, once.
    logger.warning(
        "Terminal location %s of %s is gone; making a new one",
        account.terminal_location_id,
        account.account_id,
    )
    lost = account.terminal_location_id
    account.terminal_location_id = ""
    db.session.flush()
    account = ensure_location(
        organization=organization, actor=actor, gateway=gateway, replacing=lost
    )
    return gateway.register_reader(
        account.account_id,
        registration_code=code,
        label=name,
        location=account.terminal_location_id,
    )


def rename_reader(
    *,
    organization: Organization,
    actor: Actor,
    gateway: StripeGateway,
    reader: TerminalReader,
    label: Any,
) -> TerminalReader:
    ensure(actor.role, Permission.MANAGE_SHOPS)
    name = _label(label)
    row = lock_reader(reader)
    if name == row.label:
        return row
    account = stripe_payments.connected_account(organization)
    if account is not None:
        try:
            gateway.update_reader(account.account_id, row.reader_id, label=name)
        except StripeNotFoundError:
            pass  # gone at Stripe: the name still helps here until it is removed
        except StripeGatewayError as error:
            raise refusal(error, "label") from error
    before = {"label": row.label}
    row.label = name
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="terminal_reader.renamed",
        target=row,
        before=before,
        after={"label": name},
    )
    return row


def remove_reader(
    *, organization: Organization, actor: Actor, gateway: StripeGateway, reader: TerminalReader
) -> None:
    """Remove the reader here and at Stripe (registering it again takes a new code)."""
    ensure(actor.role, Permission.MANAGE_SHOPS)
    row = lock_reader(reader)
    account = stripe_payments.connected_account(organization)
    if account is not None and (row.payment_id is not None or row.refund_id is not None):
        # What it was doing may be over with the news still on its way: Stripe says.
        try:
            row = refresh_reader(organization=organization, gateway=gateway, reader=row)
        except StripeGatewayError as error:
            raise refusal(error) from error
    if is_busy(row) and (row.payment_id is not None or row.refund_id is not None):
        raise ConflictError(
            _("This reader is taking a payment: finish or cancel it before removing the reader.")
        )
    if account is not None:
        try:
            gateway.delete_reader(account.account_id, row.reader_id)
        except StripeNotFoundError:
            pass  # already gone at Stripe
        except StripeGatewayError as error:
            raise refusal(error) from error
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="terminal_reader.removed",
        target=row,
        before={"reader_id": row.reader_id, "label": row.label, "device_type": row.device_type},
    )
    db.session.delete(row)
    db.session.flush()


def sync_statuses(*, organization: Organization, gateway: StripeGateway) -> None:
    """Read every reader's status from Stripe in one call (for the readers list)."""
    account = stripe_payments.connected_account(organization)
    rows = list_readers()
    if account is None or not rows:
        return
    found = {reader.id: reader for reader in gateway.list_readers(account.account_id)}
    for row in rows:
        reader = found.get(row.reader_id)
        row.status = (reader.status or "") if reader is not None else "offline"
        if reader is not None and reader.label:
            row.label = reader.label
    db.session.flush()


# --------------------------------------------------------------------------- a reader's state


def close_attempt(
    organization: Organization,
    gateway: StripeGateway,
    account_id: str,
    payment: Payment,
    message: str,
) -> None:
    """End an attempt that can no longer be paid: its intent cancelled, the payment with it."""
    payment.failure_message = message[:2000]
    db.session.flush()
    try:
        intent = gateway.cancel_payment_intent(
            account_id,
            payment.provider_reference,
            cancellation_reason="abandoned",
            idempotency_key=f"payment-{payment.id}-abandoned",
        )
    except InvalidRequestError:
        # Past cancelling (it went through after all): Stripe's state decides.
        intent = gateway.retrieve_payment_intent(account_id, payment.provider_reference)
    except StripeGatewayError:
        logger.warning("payment %s: its intent could not be cancelled now", payment.id)
        return  # still processing: the next refresh, or the sweep, closes it
    stripe_payments.sync_payment(organization=organization, payment=payment, intent=intent)


def _running_for(action: ReaderAction | None, intent_id: str) -> bool:
    return (
        action is not None
        and action.status == IN_PROGRESS
        and bool(intent_id)
        and action.payment_intent == intent_id
    )


def settle(
    organization: Organization,
    gateway: StripeGateway,
    account_id: str,
    row: TerminalReader,
    fresh: Reader | None,
) -> None:
    """Bring the payment the reader was taking up to Stripe's word; free the reader when its
    action for that payment has ended."""
    if row.payment_id is None:
        return
    payment = db.session.get(Payment, row.payment_id)
    if payment is None:
        row.payment_id = None
        return
    intent_id = payment.provider_reference
    running = _running_for(fresh.action if fresh is not None else None, intent_id)
    if payment.state is MoneyState.PROCESSING and intent_id:
        intent = gateway.retrieve_payment_intent(account_id, intent_id)
        stripe_payments.sync_payment(organization=organization, payment=payment, intent=intent)
        if running:
            row.action = {**(row.action or {}), "intent_status": intent.status}
        elif payment.state is MoneyState.PROCESSING and _nothing_presented(intent):
            # The action ended with no card (cancelled on the reader, or the reader never got
            # it): this attempt is over.
            close_attempt(
                organization,
                gateway,
                account_id,
                payment,
                _("The payment was cancelled on the reader."),
            )
    if not running:
        row.payment_id = None
    db.session.flush()


def _nothing_presented(intent: PaymentIntent) -> bool:
    return intent.status in ("requires_payment_method", "requires_confirmation") and (
        intent.last_payment_error is None
    )


# (organization, reader, its current action or None, gateway): runs in the reader's lock each
# time a reader with ``refund_id`` set is refreshed.
RefundActionListener = Callable[
    [Organization, TerminalReader, ReaderAction | None, StripeGateway], None
]
_refund_listeners: list[RefundActionListener] = []


def on_refund_action(listener: RefundActionListener) -> RefundActionListener:
    """Follow in-person refunds (``refund_payment`` actions) on readers.

    The refunds side registers a listener; it owns ``TerminalReader.refund_id`` (sets it when it
    sends a refund to a reader, clears it when the action is over).
    """
    if listener not in _refund_listeners:
        _refund_listeners.append(listener)
    return listener


def refresh_reader(
    *, organization: Organization, gateway: StripeGateway, reader: TerminalReader
) -> TerminalReader:
    """Ask Stripe for the reader now and settle the payment it was taking.

    Safe to call any time, from an event or from polling: Stripe is the truth, and payments only
    move forward.
    """
    row = lock_reader(reader)
    account = stripe_payments.connected_account(organization)
    if account is None:
        return row
    fresh: Reader | None
    try:
        fresh = gateway.retrieve_reader(account.account_id, row.reader_id)
    except StripeNotFoundError:
        fresh = None  # removed at Stripe: whatever it was doing is over
    if fresh is not None:
        apply_reader(row, fresh)
    else:
        row.status = "offline"
        row.action = _action_dict(None)
    settle(organization, gateway, account.account_id, row, fresh)
    if row.refund_id is not None:
        for listener in _refund_listeners:
            listener(organization, row, fresh.action if fresh is not None else None, gateway)
    db.session.flush()
    return row
