"""Refunds through Stripe: card payments (online and on a reader) given back on the organization's
connected account, and the one place Stripe's news moves our refund rows.

:func:`refund_through_stripe` is the ``at_refund`` handler of the ``card`` and ``terminal``
methods. It runs inside :func:`comptoir.billing.refunds.refund_order`'s transaction, after the
refund row exists, so its id names the Stripe request (idempotency key ``refund-<id>``): a retry
after a failed commit asks Stripe again with the same key and gets the same refund back. What
Stripe refuses (more than what remains, a charge refunded already) raises a ``DomainError`` and
the whole refund rolls back: nothing changes.

The row then stays ``processing``. Only :func:`sync_refund` moves it, forward only, with a refund
re-fetched from Stripe: from the ``refund.*`` and ``charge.refunded`` events and from the
reconciliation sweep. When it succeeds the credit note is issued, the order moves and the e-mail
goes out (:func:`comptoir.billing.refunds.advance_refund`).

An Interac debit taken on a reader cannot be refunded through the API: the customer's card must
be presented on a reader. Such a refund stays ``pending`` until staff start it on a reader
(:func:`start_reader_refund`). The reader creates the refund at Stripe with our metadata, and its
``refund.created`` event finds our row by ``comptoir_refund_id``: the same path as any refund, so
the money side never depends on the reader's events. Those only tell the reader's side (a
declined card, a cancelled action): the terminal module re-reads the reader on its
``terminal.reader.action_*`` events and on polling, and hands readers busy with a refund to
:func:`follow_reader_refund`, which frees the reader and lets staff try again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from comptoir.billing import refunds, stripe_terminal
from comptoir.billing.models import Method, MoneyState, Payment, Refund
from comptoir.billing.stripe_errors import InvalidRequestError, StripeGatewayError
from comptoir.billing.stripe_events import handles
from comptoir.billing.stripe_gateway import Event, StripeGateway, current_gateway
from comptoir.billing.stripe_models import TerminalReader
from comptoir.billing.stripe_objects import ReaderAction
from comptoir.billing.stripe_objects import Refund as StripeRefund
from comptoir.billing.stripe_payments import (
    META_ORDER,
    META_ORGANIZATION,
    META_PAYMENT,
    STRIPE_ACTOR,
    STRIPE_METHODS,
    connected_account,
)
from comptoir.platform import audit
from comptoir.platform.audit import Actor
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError, NotFoundError, ValidationError
from comptoir.tenants.models import Organization
from comptoir.tenants.permissions import Permission, ensure

logger = logging.getLogger(__name__)

META_REFUND = "comptoir_refund_id"
# A refund Stripe is still working on is ``processing`` here; its end states are ours too.
STRIPE_REFUND_STATES: dict[str, MoneyState] = {
    "pending": MoneyState.PROCESSING,
    "requires_action": MoneyState.PROCESSING,
    "succeeded": MoneyState.SUCCEEDED,
    "failed": MoneyState.FAILED,
    "canceled": MoneyState.CANCELLED,
}
# Stripe refusals that mean "not that amount": shown beside the amount field.
_AMOUNT_CODES = frozenset({"amount_too_large", "amount_too_small", "charge_already_refunded"})


class OrphanStripeRefundError(LookupError):
    """A Stripe refund names one of our refunds that does not exist (yet): retried later."""


# --------------------------------------------------------------------------- asking Stripe


def _organization(organization_id: int) -> Organization:
    organization = db.session.get(Organization, organization_id)
    if organization is None:  # pragma: no cover - tenant rows always have their organization
        message = f"organization {organization_id} not found"
        raise LookupError(message)
    return organization


def payment_account(organization: Organization, payment: Payment) -> str:
    """The connected account the payment was taken on (the one its refunds go through)."""
    account_id = str(payment.details.get("account") or "")
    if account_id:
        return account_id
    account = connected_account(organization)
    if account is None:
        raise ConflictError(_("Stripe is not connected: this payment cannot be refunded now."))
    return account.account_id


def refund_metadata(refund: Refund) -> dict[str, str | int]:
    """What ties a Stripe refund back to our rows (and how a reader's refund finds its row)."""
    return {
        META_ORGANIZATION: refund.organization_id,
        META_ORDER: refund.order_id,
        META_PAYMENT: refund.payment_id or "",
        META_REFUND: refund.id,
    }


def remaining_on_payment(payment: Payment, *, excluding: int | None = None) -> int:
    """What may still be given back of ``payment`` (refunds in progress count as given)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
        Refund.payment_id == payment.id, Refund.state.in_(refunds.ACTIVE_REFUND_STATES)
    )
    if excluding is not None:
        query = query.where(Refund.id != excluding)
    return payment.amount - int(db.session.execute(query).scalar_one())


def needs_card_present(gateway: StripeGateway, account_id: str, payment: Payment) -> bool:
    """Whether the payment is an Interac debit taken on a reader (refunded with the card)."""
    if payment.method is not Method.TERMINAL:
        return False
    known = payment.details.get("payment_method_type")
    if known:
        return known == "interac_present"
    intent = gateway.retrieve_payment_intent(account_id, payment.provider_reference)
    if not intent.latest_charge:
        return False
    return gateway.retrieve_charge(account_id, intent.latest_charge).refund_needs_card_present


def _refusal(error: StripeGatewayError) -> ValidationError | ConflictError:
    if isinstance(error, InvalidRequestError) and error.code in _AMOUNT_CODES:
        return ValidationError(error.user_message, fields={"amount": [error.user_message]})
    return ConflictError(error.user_message)


def refund_through_stripe(refund: Refund, payment: Payment | None, actor: Actor) -> None:
    """The ``at_refund`` handler of ``card`` and ``terminal``: ask Stripe to give it back.

    Runs in the refund's transaction; raises a ``DomainError`` (and the refund rolls back) when
    we or Stripe refuse. The row is left ``processing`` (Stripe has it) or, for an Interac debit
    taken on a reader, ``pending`` until staff present the card on a reader.
    """
    if payment is None or not payment.provider_reference:
        raise ValidationError(
            _("Nothing was paid by this method."),
            fields={"method": [_("Nothing was paid by this method.")]},
        )
    remaining = remaining_on_payment(payment, excluding=refund.id)
    if refund.amount > remaining:
        message = _(
            "This is more than what can still be refunded of the payment (%(limit)s).",
            limit=_format(remaining, refund.currency),
        )
        raise ValidationError(message, fields={"amount": [message]})
    organization = _organization(refund.organization_id)
    gateway = current_gateway()
    account_id = payment_account(organization, payment)
    details: dict[str, Any] = {
        **refund.details,
        "account": account_id,
        "payment_intent": payment.provider_reference,
        "refund_application_fee": organization.refund_application_fee,
    }
    try:
        if needs_card_present(gateway, account_id, payment):
            refund.details = {**details, "needs_card_present": True}
            db.session.flush()
            return
        created = gateway.create_refund(
            account_id,
            payment_intent=payment.provider_reference,
            amount=refund.amount,
            refund_application_fee=organization.refund_application_fee,
            idempotency_key=f"refund-{refund.id}",
            metadata=refund_metadata(refund),
            reason="requested_by_customer",
        )
    except StripeGatewayError as error:
        logger.info("Stripe refused refund %s: %s", refund.id, error)
        raise _refusal(error) from error
    refund.provider_reference = created.id
    # Stripe has it; the answer's status is not acted on: the events and the sweep move the row,
    # with the refund as Stripe tells it then (a refund may turn failed after saying succeeded).
    refund.state = MoneyState.PROCESSING
    refund.details = {**details, "stripe_status": created.status}
    db.session.flush()


def _format(amount: int, currency: str) -> str:
    from comptoir.billing.money import format_money
    from comptoir.platform.i18n import select_locale

    return format_money(amount, currency, select_locale())


# --------------------------------------------------------------------------- Stripe's news


def refund_for_stripe(stripe_refund: StripeRefund) -> Refund | None:
    """Our refund for a Stripe refund, in the organization in scope (never another's)."""
    found = db.session.execute(
        sa.select(Refund).where(
            Refund.provider_reference == stripe_refund.id, Refund.method.in_(STRIPE_METHODS)
        )
    ).scalar_one_or_none()
    if found is not None:
        return found
    raw_id = stripe_refund.metadata.get(META_REFUND, "")
    if not raw_id.isdigit():
        return None
    return db.session.execute(
        sa.select(Refund).where(Refund.id == int(raw_id), Refund.method.in_(STRIPE_METHODS))
    ).scalar_one_or_none()


def _mismatch(organization: Organization, refund: Refund, stripe_refund: StripeRefund) -> str:
    """Why this Stripe refund cannot be ours, or "" when everything agrees."""
    metadata = stripe_refund.metadata
    payment = db.session.get(Payment, refund.payment_id) if refund.payment_id else None
    checks = (
        (
            metadata.get(META_ORGANIZATION, str(organization.id)) != str(organization.id),
            "refund made for another organization",
        ),
        (
            metadata.get(META_REFUND, str(refund.id)) != str(refund.id),
            "refund made for another refund",
        ),
        (
            bool(refund.provider_reference) and refund.provider_reference != stripe_refund.id,
            f"a second Stripe refund {stripe_refund.id} for {refund.provider_reference}",
        ),
        (
            payment is None or stripe_refund.payment_intent != payment.provider_reference,
            f"refund of {stripe_refund.payment_intent}, not of this payment",
        ),
        (
            stripe_refund.currency.upper() != refund.currency.upper(),
            f"currency {stripe_refund.currency.upper()} instead of {refund.currency.upper()}",
        ),
        (
            stripe_refund.amount != refund.amount,
            f"amount {stripe_refund.amount} instead of {refund.amount}",
        ),
    )
    return next((problem for failed, problem in checks if failed), "")


def flag_for_review(refund: Refund, reason: str) -> None:
    if refund.details.get("review_reason") == reason:
        return
    refund.details = {**refund.details, "review_reason": reason[:2000]}
    db.session.flush()
    logger.warning("refund %s flagged for review: %s", refund.id, reason)
    audit.record(
        organization_id=refund.organization_id,
        actor=STRIPE_ACTOR,
        action="refund.flagged",
        target=refund,
        after={"review_reason": reason, "order_id": refund.order_id},
    )


def release_reader(refund: Refund) -> None:
    """The reader that was giving this refund back is free again."""
    db.session.execute(
        sa.update(TerminalReader)
        .where(TerminalReader.refund_id == refund.id)
        .values(refund_id=None)
    )


def sync_refund(*, organization: Organization, refund: Refund, stripe_refund: StripeRefund) -> bool:
    """Bring ``refund`` up to what Stripe says of it; True when its state moved."""
    problem = _mismatch(organization, refund, stripe_refund)
    if problem:
        flag_for_review(refund, problem)
        return False
    if not refund.provider_reference:
        refund.provider_reference = stripe_refund.id  # made by a reader: now we know its id
    refund.details = {**refund.details, "stripe_status": stripe_refund.status}
    state = STRIPE_REFUND_STATES.get(stripe_refund.status)
    if state is None:
        return False
    if state is MoneyState.SUCCEEDED and refund.state in (MoneyState.FAILED, MoneyState.CANCELLED):
        # We gave up on it, yet the money went back: a person must look.
        flag_for_review(refund, f"Stripe refunded it after it was marked {refund.state.value}")
        return False
    moved = refunds.advance_refund(
        refund=refund,
        actor=STRIPE_ACTOR,
        state=state,
        failure_message="Stripe could not give the money back."
        if state is MoneyState.FAILED
        else "",
    )
    if state is not MoneyState.PROCESSING:
        release_reader(refund)
    return moved


def sync_stripe_refund(
    *, organization: Organization, gateway: StripeGateway, account_id: str, stripe_refund_id: str
) -> Refund | None:
    """Re-fetch a Stripe refund on ``account_id`` and sync our refund for it, if it is ours."""
    stripe_refund = gateway.retrieve_refund(account_id, stripe_refund_id)
    refund = refund_for_stripe(stripe_refund)
    if refund is None:
        if META_REFUND in stripe_refund.metadata:
            # Made by us, but the row is not visible: its transaction has not committed yet, or
            # rolled back after Stripe said yes. Failing keeps the event for a retry and shows it.
            message = (
                f"Stripe refund {stripe_refund.id} names refund "
                f"{stripe_refund.metadata[META_REFUND]}, which does not exist"
            )
            raise OrphanStripeRefundError(message)
        logger.info("Stripe refund %s was not made through Comptoir; left alone", stripe_refund.id)
        return None
    sync_refund(organization=organization, refund=refund, stripe_refund=stripe_refund)
    return refund


def sync_pending_refund(
    *, organization: Organization, gateway: StripeGateway, refund: Refund
) -> bool:
    """Ask Stripe about a refund still in progress (the sweep's fallback); True when it moved."""
    before = refund.state
    account_id = str(refund.details.get("account") or "")
    if not account_id:
        return False
    if refund.provider_reference:
        sync_stripe_refund(
            organization=organization,
            gateway=gateway,
            account_id=account_id,
            stripe_refund_id=refund.provider_reference,
        )
    elif refund.details.get("reader_id"):
        reader_refund_progress(organization=organization, gateway=gateway, refund=refund)
    return refund.state is not before


def in_progress_refunds_of(payment_intent_ids: Iterable[str]) -> list[Refund]:
    wanted = [intent_id for intent_id in payment_intent_ids if intent_id]
    if not wanted:
        return []
    return list(
        db.session.execute(
            sa.select(Refund)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(
                Payment.provider_reference.in_(wanted),
                Refund.method.in_(STRIPE_METHODS),
                Refund.state.in_(refunds.IN_PROGRESS),
                Refund.provider_reference != "",
            )
            .order_by(Refund.id)
        ).scalars()
    )


@handles(
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refunded",
    "charge.refund.updated",
)
def on_refund_event(organization: Organization, event: Event, gateway: StripeGateway) -> None:
    if not event.account:
        return
    snapshot = event.data_object
    stripe_refund_ids: list[str] = []
    if event.object_type == "refund" and event.object_id:
        stripe_refund_ids.append(event.object_id)
    elif event.object_type == "charge":
        # Recent API versions leave the charge's refunds out; ours in progress are asked anyway.
        listed = (snapshot.get("refunds") or {}).get("data") or []
        stripe_refund_ids.extend(item["id"] for item in listed if item.get("id"))
        intent_id = snapshot.get("payment_intent")
        if isinstance(intent_id, str):
            stripe_refund_ids.extend(
                refund.provider_reference for refund in in_progress_refunds_of([intent_id])
            )
    for stripe_refund_id in dict.fromkeys(stripe_refund_ids):
        sync_stripe_refund(
            organization=organization,
            gateway=gateway,
            account_id=event.account,
            stripe_refund_id=stripe_refund_id,
        )


# --------------------------------------------------------------------------- card present


def _refund_on_reader(refund_id: int) -> Refund:
    refund = db.session.execute(
        sa.select(Refund).where(Refund.id == refund_id).with_for_update()
    ).scalar_one_or_none()
    if refund is None or refund.method not in STRIPE_METHODS:
        raise NotFoundError(_("Refund not found."))
    return refund


def waits_for_card(refund: Refund) -> bool:
    """A refund of an Interac debit that is still waiting for the card on a reader."""
    return bool(refund.details.get("needs_card_present")) and refund.state is MoneyState.PENDING


def start_reader_refund(
    *,
    organization: Organization,
    actor: Actor,
    refund: Refund,
    reader_id: Any,
    gateway: StripeGateway,
) -> TerminalReader:
    """Send an Interac refund to a reader: the customer presents their card there.

    The reader is marked busy with this refund (``TerminalReader.refund_id``) until it is over;
    :func:`follow_reader_refund` follows it from the reader's events and from polling.
    """
    ensure(actor.role, Permission.REFUND)
    refund = _refund_on_reader(refund.id)
    if not waits_for_card(refund):
        raise ConflictError(_("This refund is not waiting for a card on a reader."))
    try:
        # As Stripe has it now: what we kept of the reader may be behind.
        reader = stripe_terminal.refresh_reader(
            organization=organization,
            gateway=gateway,
            reader=stripe_terminal.chosen_reader(reader_id),
        )
    except StripeGatewayError as error:
        raise stripe_terminal.refusal(error, "reader_id") from error
    if reader.status != "online":
        message = _(
            "The reader “%(label)s” is offline. Check that it is switched on and connected to "
            "the internet, or choose another reader.",
            label=reader.label,
        )
        raise ConflictError(message, fields={"reader_id": [message]})
    if (
        reader.payment_id is not None
        or (reader.refund_id is not None and reader.refund_id != refund.id)
        or stripe_terminal.is_busy(reader)
    ):
        message = _(
            "The reader “%(label)s” is busy with another payment. Wait for it to finish, cancel "
            "it, or choose another reader.",
            label=reader.label,
        )
        raise ConflictError(message, fields={"reader_id": [message]})
    attempt = int(refund.details.get("reader_attempts") or 0) + 1
    try:
        answer = gateway.refund_payment_on_reader(
            str(refund.details["account"]),
            reader.reader_id,
            payment_intent_id=str(refund.details["payment_intent"]),
            amount=refund.amount,
            refund_application_fee=bool(refund.details.get("refund_application_fee")),
            metadata=refund_metadata(refund),
            # A new key per attempt: after a declined card, the same key would replay the old one.
            idempotency_key=f"refund-{refund.id}-reader-{attempt}",
        )
    except StripeGatewayError as error:
        raise stripe_terminal.refusal(error, "reader_id") from error
    # Stripe's answer is only "the reader is waiting": the result comes from the refund's events.
    stripe_terminal.apply_reader(reader, answer)
    reader.refund_id = refund.id
    refund.details = {
        **refund.details,
        "reader_id": reader.reader_id,
        "reader_attempts": attempt,
        "reader_failure": "",
    }
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="refund.sent_to_reader",
        target=refund,
        after={"reader_id": reader.reader_id, "label": reader.label, "amount": refund.amount},
    )
    return reader


@stripe_terminal.on_refund_action
def follow_reader_refund(
    organization: Organization,
    reader: TerminalReader,
    action: ReaderAction | None,
    gateway: StripeGateway,
) -> None:
    """A reader busy with one of our refunds was re-read (its event, or polling)."""
    refund = db.session.get(Refund, reader.refund_id) if reader.refund_id is not None else None
    if refund is None or refund.state not in refunds.IN_PROGRESS:
        reader.refund_id = None
        return
    if action is not None and action.type == "refund_payment" and action.status == "in_progress":
        return
    if action is not None and action.type == "refund_payment" and action.status == "succeeded":
        reader.refund_id = None
        if action.refund:
            sync_stripe_refund(
                organization=organization,
                gateway=gateway,
                account_id=str(refund.details["account"]),
                stripe_refund_id=action.refund,
            )
        return
    # Declined on the reader, cancelled, or the reader moved on: the refund waits for a card.
    message = ""
    if action is not None and action.type == "refund_payment" and action.status == "failed":
        message = action.failure_message or _("The card was declined.")
    reader.refund_id = None
    _reader_gave_up(refund, message)


@dataclass(frozen=True)
class ReaderRefundProgress:
    """Where a card-present refund stands: ``choose_reader`` (no reader has it), ``waiting``
    (on the reader, or at Stripe), ``declined`` (the reader's attempt failed: try again),
    ``succeeded`` or ``failed``/``cancelled`` (the refund is over)."""

    status: str
    message: str = ""


def reader_refund_progress(
    *, organization: Organization, gateway: StripeGateway, refund: Refund
) -> ReaderRefundProgress:
    """The refund's progress, asking the reader when the events are late (polling fallback)."""
    reader_id = str(refund.details.get("reader_id") or "")
    if refund.state in refunds.IN_PROGRESS and reader_id:
        row = db.session.execute(
            sa.select(TerminalReader).where(TerminalReader.reader_id == reader_id)
        ).scalar_one_or_none()
        if row is not None and row.refund_id == refund.id:
            stripe_terminal.refresh_reader(organization=organization, gateway=gateway, reader=row)
        else:
            _reader_gave_up(refund, "")  # removed, or taken by something else meanwhile
    return refund_progress(refund)


def refund_progress(refund: Refund) -> ReaderRefundProgress:
    """What is known of a card-present refund now, without asking Stripe."""
    if refund.state is MoneyState.SUCCEEDED:
        return ReaderRefundProgress("succeeded")
    if refund.state is MoneyState.FAILED:
        return ReaderRefundProgress("failed", str(refund.details.get("failure_message") or ""))
    if refund.state is MoneyState.CANCELLED:
        return ReaderRefundProgress("cancelled")
    if refund.state is MoneyState.PROCESSING or refund.details.get("reader_id"):
        return ReaderRefundProgress("waiting")
    failure = str(refund.details.get("reader_failure") or "")
    return ReaderRefundProgress("declined" if failure else "choose_reader", failure)


def _reader_gave_up(refund: Refund, message: str) -> None:
    release_reader(refund)
    refund.details = {**refund.details, "reader_id": "", "reader_failure": message}
    db.session.flush()


def cancel_reader_refund(
    *, organization: Organization, actor: Actor, refund: Refund, gateway: StripeGateway
) -> None:
    """Stop waiting for the card on the reader; the refund waits for another try."""
    ensure(actor.role, Permission.REFUND)
    refund = _refund_on_reader(refund.id)
    reader_id = str(refund.details.get("reader_id") or "")
    if not reader_id or not waits_for_card(refund):
        return
    # Nothing in progress any more is no error: the card may have been presented meanwhile.
    with contextlib.suppress(InvalidRequestError):
        gateway.cancel_reader_action(str(refund.details["account"]), reader_id)
    # Re-read the reader: its action ends, and what became of the refund shows.
    progress = reader_refund_progress(organization=organization, gateway=gateway, refund=refund)
    if progress.status in ("succeeded", "waiting"):
        raise ConflictError(_("The card was presented: the refund is under way."))
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="refund.reader_cancelled",
        target=refund,
        after={"reader_id": reader_id},
    )


def abandon_refund(
    *, organization: Organization, actor: Actor, refund: Refund, gateway: StripeGateway
) -> None:
    """Give up on a refund waiting for a card: it is cancelled and what it held is free again."""
    ensure(actor.role, Permission.REFUND)
    refund = _refund_on_reader(refund.id)
    if not waits_for_card(refund):
        raise ConflictError(_("Only a refund still waiting for a card can be abandoned."))
    cancel_reader_refund(organization=organization, actor=actor, refund=refund, gateway=gateway)
    refunds.advance_refund(refund=refund, actor=actor, state=MoneyState.CANCELLED)
    release_reader(refund)
