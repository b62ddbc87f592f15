"""Connect: the organization's own Stripe account, its onboarding, its state, and disconnecting.

Each organization connects one Standard account, created by the platform and completed by the
organization's owner on Stripe's hosted onboarding (Account Links). Our ``StripeAccount`` row
mirrors what Stripe decides (details submitted, charges enabled...) so pages and the checkout need
no round trip; it is brought up to date by re-fetching the account from Stripe, on return from
onboarding, on request, and on ``account.updated`` events.

Events arrive late, twice or out of order. The row remembers the ``created`` time of the newest
event applied (``synced_at``) and an older event changes nothing. The row is locked while the
account is re-fetched, so two updates cannot interleave and leave the older answer last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from comptoir.billing.models import MoneyState, Payment, Refund
from comptoir.billing.stripe_errors import StripeNotFoundError
from comptoir.billing.stripe_events import handles
from comptoir.billing.stripe_gateway import Account, AccountLink, Event, StripeGateway
from comptoir.billing.stripe_models import StripeAccount, TerminalReader
from comptoir.billing.stripe_payments import META_ORGANIZATION, STRIPE_ACTOR, STRIPE_METHODS
from comptoir.platform import audit
from comptoir.platform.audit import Actor, AuditLog
from comptoir.platform.db import db
from comptoir.platform.errors import ConflictError
from comptoir.tenants.models import Organization

logger = logging.getLogger(__name__)

META_ORGANIZATION_SLUG = "comptoir_organization_slug"
CONNECTED_ACTION = "stripe.connected"
# What the row mirrors of Stripe's account, in the audit trail's words.
STATE_FIELDS = (
    "details_submitted",
    "charges_enabled",
    "payouts_enabled",
    "requirements_due",
    "disabled_reason",
)
# Payments and refunds still waiting for Stripe's word: their news needs the account.
_UNSETTLED = (MoneyState.PENDING, MoneyState.PROCESSING)


class ConnectStatus(StrEnum):
    NOT_CONNECTED = "not_connected"
    # The owner has not finished Stripe's onboarding.
    ONBOARDING = "onboarding"
    # Onboarding is done but Stripe does not (or no longer) let the account take payments.
    RESTRICTED = "restricted"
    READY = "ready"


@dataclass(frozen=True)
class ConnectState:
    status: ConnectStatus
    account: StripeAccount | None

    @property
    def charges_enabled(self) -> bool:
        return self.account is not None and self.account.charges_enabled


def connected_account(organization: Organization) -> StripeAccount | None:
    return db.session.execute(
        sa.select(StripeAccount).where(StripeAccount.organization_id == organization.id)
    ).scalar_one_or_none()


def _locked_account(organization: Organization) -> StripeAccount | None:
    return db.session.execute(
        sa.select(StripeAccount)
        .where(StripeAccount.organization_id == organization.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def connect_state(organization: Organization) -> ConnectState:
    account = connected_account(organization)
    if account is None:
        return ConnectState(ConnectStatus.NOT_CONNECTED, None)
    if account.charges_enabled:
        return ConnectState(ConnectStatus.READY, account)
    if not account.details_submitted:
        return ConnectState(ConnectStatus.ONBOARDING, account)
    return ConnectState(ConnectStatus.RESTRICTED, account)


def card_payments_ready(organization: Organization) -> bool:
    """Whether the organization's account may take card payments now (charges enabled)."""
    return connect_state(organization).charges_enabled


def _state(row: StripeAccount) -> dict[str, Any]:
    return {name: getattr(row, name) for name in STATE_FIELDS}


def _copy_state(row: StripeAccount, account: Account) -> tuple[dict[str, Any], dict[str, Any]]:
    """Put Stripe's answer on the row; the values that changed, before and after."""
    before = _state(row)
    row.details_submitted = account.details_submitted
    row.charges_enabled = account.charges_enabled
    row.payouts_enabled = account.payouts_enabled
    row.requirements_due = list(account.requirements_due)
    row.disabled_reason = (account.disabled_reason or "")[:200]
    after = _state(row)
    changed = [name for name in STATE_FIELDS if before[name] != after[name]]
    return {name: before[name] for name in changed}, {name: after[name] for name in changed}


def _record_changes(
    organization: Organization, row: StripeAccount, before: dict[str, Any], after: dict[str, Any]
) -> None:
    if not after:
        return
    audit.record(
        organization_id=organization.id,
        actor=STRIPE_ACTOR,
        action="stripe.account_updated",
        target=row,
        before=before,
        after={**after, "account_id": row.account_id},
    )


def _connection_number(organization: Organization) -> int:
    """1 for the organization's first connection, 2 after a disconnect, and so on."""
    count = db.session.execute(
        sa.select(sa.func.count())
        .select_from(AuditLog)
        .where(AuditLog.organization_id == organization.id, AuditLog.action == CONNECTED_ACTION)
    ).scalar_one()
    return int(count) + 1


def connect_account(
    *, organization: Organization, actor: Actor, gateway: StripeGateway
) -> StripeAccount:
    """Create the organization's Standard account at Stripe and our row for it.

    The idempotency key comes from the organization and its connection number: when our
    transaction fails after Stripe created the account, trying again gets the same account back
    instead of a second one. Gateway errors pass through for the caller to explain.
    """
    if connected_account(organization) is not None:
        raise ConflictError(_("Stripe is already connected for this organization."))
    number = _connection_number(organization)
    account = gateway.create_connected_account(
        country=(organization.country or "CA").upper(),
        email=organization.email or None,
        metadata={
            META_ORGANIZATION: organization.id,
            META_ORGANIZATION_SLUG: organization.slug,
        },
        idempotency_key=f"organization-{organization.id}-connect-{number}",
    )
    row = StripeAccount(organization_id=organization.id, account_id=account.id)
    _copy_state(row, account)
    db.session.add(row)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action=CONNECTED_ACTION,
        target=row,
        after={"account_id": row.account_id, **_state(row)},
    )
    return row


def onboarding_link(
    *, organization: Organization, gateway: StripeGateway, refresh_url: str, return_url: str
) -> AccountLink:
    """A one-time link to Stripe's hosted onboarding for the organization's account.

    Stripe sends the owner to ``return_url`` when they leave onboarding (finished or not) and to
    ``refresh_url`` when the link has expired or was used already: that URL makes a new link.
    """
    row = connected_account(organization)
    if row is None:
        raise ConflictError(_("Connect Stripe first."))
    return gateway.create_account_link(
        row.account_id, refresh_url=refresh_url, return_url=return_url
    )


def refresh_account(*, organization: Organization, gateway: StripeGateway) -> StripeAccount:
    """Re-fetch the account from Stripe and keep what it says now."""
    row = _locked_account(organization)
    if row is None:
        raise ConflictError(_("Connect Stripe first."))
    account = gateway.retrieve_account(row.account_id)
    before, after = _copy_state(row, account)
    db.session.flush()
    _record_changes(organization, row, before, after)
    return row


def unsettled_payments(organization: Organization) -> int:
    """Stripe payments and refunds of the organization still waiting for Stripe's word."""
    payments = db.session.execute(
        sa.select(sa.func.count())
        .select_from(Payment)
        .where(
            Payment.organization_id == organization.id,
            Payment.method.in_(STRIPE_METHODS),
            Payment.state.in_(_UNSETTLED),
        )
    ).scalar_one()
    refunds = db.session.execute(
        sa.select(sa.func.count())
        .select_from(Refund)
        .where(
            Refund.organization_id == organization.id,
            Refund.method.in_(STRIPE_METHODS),
            Refund.state.in_(_UNSETTLED),
        )
    ).scalar_one()
    return int(payments) + int(refunds)


def disconnect(*, organization: Organization, actor: Actor) -> None:
    """Forget the organization's connected account (the account stays the organization's at
    Stripe; connecting again creates a new one).

    Refused while a Stripe payment or refund is under way: its outcome reaches us as events on
    the account, and an event whose account no organization owns is ignored, so the money would
    move at Stripe while the order stayed unpaid here.
    """
    row = _locked_account(organization)
    if row is None:
        raise ConflictError(_("Stripe is not connected."))
    waiting = unsettled_payments(organization)
    if waiting:
        raise ConflictError(
            ngettext(
                "%(num)d card payment or refund is still waiting for Stripe's answer. "
                "Disconnect once it is settled, so that its outcome is not lost.",
                "%(num)d card payments or refunds are still waiting for Stripe's answer. "
                "Disconnect once they are settled, so that their outcome is not lost.",
                waiting,
            )
        )
    _forget(organization, row, actor=actor, reason="disconnected")


def _forget(organization: Organization, row: StripeAccount, *, actor: Actor, reason: str) -> None:
    before = {"account_id": row.account_id, **_state(row)}
    # Readers are registered on the account: they go with it.
    readers = db.session.execute(
        sa.delete(TerminalReader)
        .where(TerminalReader.organization_id == organization.id)
        .returning(TerminalReader.reader_id)
    ).all()
    db.session.delete(row)
    db.session.flush()
    audit.record(
        organization_id=organization.id,
        actor=actor,
        action="stripe.disconnected",
        target=row,
        before=before,
        after={"reason": reason, "readers_removed": len(readers)},
    )


def _timestamp(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@handles("account.updated", "account.application.deauthorized")
def on_account_event(organization: Organization, event: Event, gateway: StripeGateway) -> None:
    row = _locked_account(organization)
    if row is None or row.account_id != event.account:
        return
    if event.type == "account.application.deauthorized":
        _on_deauthorized(organization, row, gateway)
        return
    # Strictly older only: events of the same second are all applied, each with a fresh fetch.
    if row.synced_at is not None and event.created < _timestamp(row.synced_at):
        logger.info(
            "account.updated %s for %s is older than the state we hold; ignored",
            event.id,
            row.account_id,
        )
        return
    account = gateway.retrieve_account(row.account_id)
    before, after = _copy_state(row, account)
    row.synced_at = datetime.fromtimestamp(event.created, UTC)
    db.session.flush()
    _record_changes(organization, row, before, after)


def _on_deauthorized(
    organization: Organization, row: StripeAccount, gateway: StripeGateway
) -> None:
    """The organization revoked the platform's access at Stripe: the account is gone for us.

    Checked with Stripe first, as every event is: while the account still answers us, the event
    is stale or mistaken and changes nothing. Unlike a disconnect from our page, this cannot be
    refused: payments still under way stay listed as stuck in the operator console.
    """
    try:
        gateway.retrieve_account(row.account_id)
    except StripeNotFoundError:
        _forget(organization, row, actor=STRIPE_ACTOR, reason="deauthorized")
        return
    logger.warning(
        "account.application.deauthorized for %s but the account still answers; ignored",
        row.account_id,
    )


# What Stripe's requirement codes ask for, in words; unknown codes are shown as they are.
_REQUIREMENT_LABELS = (
    ("external_account", _l("a bank account for payouts")),
    ("tos_acceptance.", _l("accepting Stripe's terms of service")),
    ("business_profile.", _l("the business profile (activity, website)")),
    ("company.", _l("the organization's legal details")),
    ("representative.", _l("the representative's identity")),
    ("individual.", _l("the representative's identity")),
    ("owners.", _l("the owners' identity")),
    ("directors.", _l("the directors' identity")),
    ("executives.", _l("the executives' identity")),
    ("person_", _l("a person's identity")),
    ("settings.", _l("the account's settings")),
)


def requirement_labels(requirements: list[str]) -> list[str]:
    """What Stripe still needs, in words, each once, in Stripe's order."""
    labels: list[str] = []
    for code in requirements:
        label = next(
            (str(text) for prefix, text in _REQUIREMENT_LABELS if code.startswith(prefix)), code
        )
        if label not in labels:
            labels.append(label)
    return labels


__all__ = [
    "ConnectState",
    "ConnectStatus",
    "card_payments_ready",
    "connect_account",
    "connect_state",
    "connected_account",
    "disconnect",
    "onboarding_link",
    "refresh_account",
    "requirement_labels",
    "unsettled_payments",
]
