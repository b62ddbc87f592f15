"""Stripe in the operator console: each organization's Connect state and payment health, and the
Stripe events received, with a retry for those whose processing failed.

Operators only (``operator_required``, which answers 404 to anyone else); the views run across
organizations, so every query on a tenant table names its organization itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from comptoir.billing.models import MoneyState, Payment
from comptoir.billing.stripe_connect import ConnectStatus
from comptoir.billing.stripe_events import PROCESS_EVENT_JOB
from comptoir.billing.stripe_models import EventState, StripeAccount, StripeEvent
from comptoir.billing.stripe_payments import STRIPE_METHODS
from comptoir.platform import outbox
from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import Queue
from comptoir.tenants.guards import operator_required
from comptoir.tenants.models import Organization

blueprint = Blueprint("billing_operators", __name__, template_folder="../templates")

PAGE_SIZE = 100
EVENTS_LIMIT = 100
# A card payment is normally settled within seconds; one still processing after this is stuck.
STUCK_AFTER = timedelta(minutes=15)

STATE_LABELS = {
    EventState.RECEIVED.value: _l("received"),
    EventState.PROCESSED.value: _l("processed"),
    EventState.IGNORED.value: _l("ignored"),
    EventState.FAILED.value: _l("failed"),
}
CONNECT_LABELS = {
    ConnectStatus.NOT_CONNECTED: _l("Not connected"),
    ConnectStatus.ONBOARDING: _l("Onboarding incomplete"),
    ConnectStatus.RESTRICTED: _l("Charges not enabled"),
    ConnectStatus.READY: _l("Charges enabled"),
}


@dataclass(frozen=True)
class OrganizationHealth:
    organization: Organization
    account: StripeAccount | None
    last_webhook_at: datetime | None
    last_webhook_type: str | None
    failed_events: int
    stuck_payments: int

    @property
    def status(self) -> ConnectStatus:
        if self.account is None:
            return ConnectStatus.NOT_CONNECTED
        if self.account.charges_enabled:
            return ConnectStatus.READY
        if not self.account.details_submitted:
            return ConnectStatus.ONBOARDING
        return ConnectStatus.RESTRICTED


def _health_query(cutoff: datetime, *, problems_only: bool) -> sa.Select[Any]:
    last_webhook_at = (
        sa.select(sa.func.max(StripeEvent.received_at))
        .where(StripeEvent.organization_id == Organization.id, StripeEvent.source == "webhook")
        .correlate(Organization)
        .scalar_subquery()
    )
    last_webhook_type = (
        sa.select(StripeEvent.type)
        .where(StripeEvent.organization_id == Organization.id, StripeEvent.source == "webhook")
        .order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc())
        .limit(1)
        .correlate(Organization)
        .scalar_subquery()
    )
    failed_events = (
        sa.select(sa.func.count())
        .select_from(StripeEvent)
        .where(
            StripeEvent.organization_id == Organization.id,
            StripeEvent.state == EventState.FAILED.value,
        )
        .correlate(Organization)
        .scalar_subquery()
    )
    stuck_payments = (
        sa.select(sa.func.count())
        .select_from(Payment)
        .where(
            Payment.organization_id == Organization.id,
            Payment.method.in_(STRIPE_METHODS),
            Payment.state == MoneyState.PROCESSING,
            Payment.created_at < cutoff,
        )
        .correlate(Organization)
        .scalar_subquery()
    )
    query = sa.select(
        Organization,
        StripeAccount,
        last_webhook_at.label("last_webhook_at"),
        last_webhook_type.label("last_webhook_type"),
        failed_events.label("failed_events"),
        stuck_payments.label("stuck_payments"),
    ).outerjoin(StripeAccount, StripeAccount.organization_id == Organization.id)
    if problems_only:
        query = query.where(sa.or_(failed_events > 0, stuck_payments > 0))
    return query


def _event_counts() -> dict[str, int]:
    counts = dict.fromkeys(STATE_LABELS, 0)
    rows = db.session.execute(
        sa.select(StripeEvent.state, sa.func.count()).group_by(StripeEvent.state)
    ).all()
    counts.update({state: int(count) for state, count in rows})
    return counts


@blueprint.get("/")
@operator_required
def index() -> Any:
    q = (request.args.get("q") or "").strip()[:200]
    problems = request.args.get("problems") == "1"
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    cutoff = utcnow() - STUCK_AFTER
    query = _health_query(cutoff, problems_only=problems)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(
            sa.or_(Organization.slug.like(like), sa.func.lower(Organization.name).like(like))
        )
    rows = db.session.execute(
        query.order_by(Organization.slug).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)
    ).all()
    health = [
        OrganizationHealth(
            organization=organization,
            account=account,
            last_webhook_at=last_at,
            last_webhook_type=last_type,
            failed_events=int(failed or 0),
            stuck_payments=int(stuck or 0),
        )
        for organization, account, last_at, last_type, failed, stuck in rows[:PAGE_SIZE]
    ]
    last_webhook = db.session.execute(
        sa.select(StripeEvent)
        .where(StripeEvent.source == "webhook")
        .order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return render_template(
        "billing/operators/index.html",
        active_nav="payments",
        rows=health,
        q=q,
        problems=problems,
        page=page,
        has_next=len(rows) > PAGE_SIZE,
        counts=_event_counts(),
        state_labels=STATE_LABELS,
        connect_labels=CONNECT_LABELS,
        statuses=ConnectStatus,
        last_webhook=last_webhook,
        stuck_minutes=int(STUCK_AFTER.total_seconds() // 60),
    )


@blueprint.get("/webhooks")
@operator_required
def webhooks() -> Any:
    state = request.args.get("state") or ""
    errors_only = request.args.get("errors") == "1"
    event_type = (request.args.get("type") or "").strip()[:100]
    org_slug = (request.args.get("organization") or "").strip().lower()[:63]
    query = sa.select(StripeEvent, Organization.slug).outerjoin(
        Organization, Organization.id == StripeEvent.organization_id
    )
    if state in STATE_LABELS:
        query = query.where(StripeEvent.state == state)
    if errors_only:
        query = query.where(StripeEvent.last_error != "")
    if event_type:
        query = query.where(StripeEvent.type.startswith(event_type, autoescape=True))
    if org_slug:
        query = query.where(Organization.slug == org_slug)
    rows = db.session.execute(
        query.order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc()).limit(EVENTS_LIMIT)
    ).all()
    return render_template(
        "billing/operators/webhooks.html",
        active_nav="webhooks",
        rows=rows,
        filters={
            "state": state,
            "errors": errors_only,
            "type": event_type,
            "organization": org_slug,
        },
        state_labels=STATE_LABELS,
        counts=_event_counts(),
        limit=EVENTS_LIMIT,
    )


@blueprint.post("/webhooks/<event_id>/retry")
@operator_required
def retry(event_id: str) -> Any:
    event = db.session.get(StripeEvent, event_id)
    if event is None:
        abort(404)
    if event.state != EventState.FAILED.value:
        flash(_("Event %(id)s has not failed; nothing to retry.", id=event_id), "error")
    else:
        outbox.enqueue(PROCESS_EVENT_JOB, queue=Queue.HIGH, event_id=event.id)
        db.session.commit()  # the job is relayed to its queue after this commit
        flash(_("Event %(id)s will be processed again.", id=event_id), "success")
    # Back to the filtered list the operator came from, never anywhere else.
    back = request.form.get("next", "")
    if not back.startswith(url_for(".webhooks")) or "//" in back:
        back = url_for(".webhooks")
    return redirect(back)
