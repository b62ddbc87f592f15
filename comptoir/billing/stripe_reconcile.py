"""The reconciliation sweep: what Stripe knows and we missed, caught up on a schedule.

Webhooks get lost (our endpoint was down, a deploy, a network cut) and jobs die. The sweep makes
the outcome independent of them, in three steps:

1. For each connected account, it asks Stripe for the events no endpoint has acknowledged
   (``delivery_success=false``) created since the account's last check (``reconciled_at``, less
   :data:`EVENTS_MARGIN` for clocks and events created during the last run), and stores those we
   do not have, like a webhook would (``source="reconciliation"``; storing is idempotent).
2. Payments and refunds still in progress after :data:`STUCK_AFTER` are asked about directly:
   the intent or the refund is re-fetched and synced, whatever became of its events.
3. Events a handler left ``failed``, or ``received`` and never processed (a lost job), are run
   again once they are :data:`RETRY_AFTER` old, up to ``stripe_events.MAX_ATTEMPTS`` attempts.

Each organization is reconciled in its own transaction and scope: one organization's failure
(a disconnected account, Stripe refusing) is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from comptoir.billing import refunds, stripe_events, stripe_payments, stripe_refunds
from comptoir.billing.models import MoneyState, Payment, Refund
from comptoir.billing.stripe_gateway import StripeGateway, current_gateway
from comptoir.billing.stripe_models import StripeAccount
from comptoir.platform.db import db, utcnow
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.tenants.models import Organization

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 300
# A card payment normally settles in seconds; after this long its news is presumed lost.
STUCK_AFTER = timedelta(minutes=10)
EVENTS_MARGIN = timedelta(minutes=15)
# Stripe retries a failed delivery for three days: an account never checked looks back as far.
FIRST_LOOKBACK = timedelta(days=3)
RETRY_AFTER = timedelta(minutes=5)
BATCH = 200


@dataclass
class ReconciliationReport:
    organizations: int = 0
    events_listed: int = 0
    events_stored: int = 0
    payments_checked: int = 0
    payments_moved: int = 0
    refunds_checked: int = 0
    refunds_moved: int = 0
    events_retried: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: ReconciliationReport) -> None:
        for name in (
            "organizations",
            "events_listed",
            "events_stored",
            "payments_checked",
            "payments_moved",
            "refunds_checked",
            "refunds_moved",
            "events_retried",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)

    def __str__(self) -> str:
        return (
            f"{self.organizations} organization(s); {self.events_stored} of "
            f"{self.events_listed} undelivered event(s) stored; {self.payments_moved} of "
            f"{self.payments_checked} payment(s) and {self.refunds_moved} of "
            f"{self.refunds_checked} refund(s) moved; {self.events_retried} event(s) retried; "
            f"{len(self.failures)} failure(s)"
        )


def _organizations_with_stripe() -> list[int]:
    with unscoped():
        ids = list(
            db.session.execute(
                sa.select(StripeAccount.organization_id).order_by(StripeAccount.organization_id)
            ).scalars()
        )
    db.session.rollback()
    return ids


def fetch_undelivered_events(
    *, account: StripeAccount, gateway: StripeGateway, now: datetime, report: ReconciliationReport
) -> None:
    """Store the account's events Stripe could not deliver since its last check."""
    since = (
        account.reconciled_at - EVENTS_MARGIN
        if account.reconciled_at is not None
        else now - FIRST_LOOKBACK
    )
    events = gateway.list_events(
        account.account_id, created_gte=int(since.timestamp()), delivery_success=False
    )
    report.events_listed += len(events)
    # Oldest first, so that their jobs run in Stripe's order (not needed, but kinder to logs).
    for event in sorted(events, key=lambda item: (item.created, item.id)):
        if stripe_events.store_event(event, source="reconciliation"):
            report.events_stored += 1
    account.reconciled_at = now
    db.session.flush()


@contextmanager
def _isolated(report: ReconciliationReport, what: str) -> Iterator[None]:
    """A savepoint for one payment or refund: its failure is reported, the others go on."""
    savepoint = db.session.begin_nested()
    try:
        yield
    except Exception as error:
        savepoint.rollback()
        logger.exception("Stripe reconciliation of %s failed", what)
        report.failures.append(f"{what}: {type(error).__name__}: {error}")
        return
    savepoint.commit()


def recheck_stuck(
    *,
    organization: Organization,
    account: StripeAccount,
    gateway: StripeGateway,
    cutoff: datetime,
    report: ReconciliationReport,
) -> None:
    """Ask Stripe about payments and refunds still in progress since before ``cutoff``."""
    stuck_payments = db.session.execute(
        sa.select(Payment.id, Payment.provider_reference, Payment.details)
        .where(
            Payment.method.in_(stripe_payments.STRIPE_METHODS),
            Payment.state == MoneyState.PROCESSING,
            Payment.provider_reference != "",
            Payment.created_at <= cutoff,
        )
        .order_by(Payment.id)
        .limit(BATCH)
    ).all()
    for payment_id, intent_id, details in stuck_payments:
        report.payments_checked += 1
        with _isolated(report, f"payment {payment_id}"):
            payment = stripe_payments.sync_intent(
                organization=organization,
                gateway=gateway,
                account_id=str((details or {}).get("account") or account.account_id),
                intent_id=intent_id,
            )
            if payment is not None and payment.state is not MoneyState.PROCESSING:
                report.payments_moved += 1
    stuck_refunds = db.session.execute(
        sa.select(Refund.id)
        .where(
            Refund.method.in_(stripe_payments.STRIPE_METHODS),
            Refund.state.in_(refunds.IN_PROGRESS),
            Refund.created_at <= cutoff,
        )
        .order_by(Refund.id)
        .limit(BATCH)
    ).scalars()
    for refund_id in list(stuck_refunds):
        report.refunds_checked += 1
        with _isolated(report, f"refund {refund_id}"):
            refund = db.session.get(Refund, refund_id)
            if refund is not None and stripe_refunds.sync_pending_refund(
                organization=organization, gateway=gateway, refund=refund
            ):
                report.refunds_moved += 1


def reconcile_organization(
    *,
    organization_id: int,
    gateway: StripeGateway,
    now: datetime,
    stuck_after: timedelta = STUCK_AFTER,
    report: ReconciliationReport,
) -> None:
    """Reconcile one organization in its own scope; the caller commits or rolls back."""
    with tenant_scope(organization_id):
        organization = db.session.get(Organization, organization_id)
        account = db.session.execute(
            sa.select(StripeAccount).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if organization is None or account is None:
            return  # disconnected meanwhile, or another run has it now
        fetch_undelivered_events(account=account, gateway=gateway, now=now, report=report)
        recheck_stuck(
            organization=organization,
            account=account,
            gateway=gateway,
            cutoff=now - stuck_after,
            report=report,
        )


def retry_events(*, older_than: timedelta, report: ReconciliationReport) -> None:
    """Run again the events left failed or never processed, each in its own transaction."""
    for event_id in stripe_events.events_to_retry(older_than=older_than, limit=BATCH):
        try:
            with unscoped():
                stripe_events.process_event(event_id=event_id)
            db.session.commit()
            report.events_retried += 1
        except Exception as error:
            db.session.rollback()
            logger.exception("retrying Stripe event %s failed", event_id)
            report.failures.append(f"event {event_id}: {type(error).__name__}: {error}")


def reconcile(
    *,
    gateway: StripeGateway | None = None,
    now: datetime | None = None,
    stuck_after: timedelta = STUCK_AFTER,
    retry_after: timedelta = RETRY_AFTER,
) -> ReconciliationReport:
    """One run of the sweep over every organization with a connected account. Commits."""
    gateway = gateway or current_gateway()
    report = ReconciliationReport()
    for organization_id in _organizations_with_stripe():
        started = now or utcnow()
        mine = ReconciliationReport()
        try:
            reconcile_organization(
                organization_id=organization_id,
                gateway=gateway,
                now=started,
                stuck_after=stuck_after,
                report=mine,
            )
            db.session.commit()
        except Exception as error:
            db.session.rollback()
            logger.exception("Stripe reconciliation of organization %s failed", organization_id)
            report.failures.append(
                f"organization {organization_id}: {type(error).__name__}: {error}"
            )
            continue
        mine.organizations = 1
        report.add(mine)
    retry_events(older_than=retry_after, report=report)
    return report
