"""Stripe events: received once, processed by a job, acted on by handlers per event type.

The webhook view verifies the signature against the raw body and calls :func:`store_event`; the
reconciliation sweep calls it too for events Stripe could not deliver. Storing is idempotent (the
event id is the primary key), and only a newly stored event is queued, so a replay costs one
``INSERT … ON CONFLICT DO NOTHING`` and changes nothing.

The job finds the organization from the event's connected account, then runs the handler
registered for the event's type inside that organization's scope. Handlers must re-fetch the
object from Stripe on the event's account and only move states forward: events arrive late, twice
or out of order, and the snapshot they carry may be stale.

A failing handler does not lose the event: it is marked ``failed`` with the error and retried by
the reconciliation sweep; the operator console lists it meanwhile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from comptoir.billing.stripe_gateway import Event, StripeGateway, current_gateway
from comptoir.billing.stripe_models import EventState, StripeAccount, StripeEvent
from comptoir.platform import outbox
from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import Queue
from comptoir.platform.tenancy import tenant_scope, unscoped
from comptoir.tenants.models import Organization

logger = logging.getLogger(__name__)

PROCESS_EVENT_JOB = "billing.stripe_event"
MAX_ATTEMPTS = 8
MAX_ERROR = 2000

# (organization, event, gateway) -> None; runs in the organization's scope, flushes, never commits.
EventHandler = Callable[[Organization, Event, StripeGateway], None]
_handlers: dict[str, EventHandler] = {}


def handles(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    """Register a handler for event types (``payment_intent.succeeded``…); one per type."""

    def decorator(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            existing = _handlers.get(event_type)
            if existing is not None and existing is not handler:
                message = f"Stripe event {event_type!r} has two handlers"
                raise RuntimeError(message)
            _handlers[event_type] = handler
        return handler

    return decorator


def handled_types() -> list[str]:
    return sorted(_handlers)


def handler_for(event_type: str) -> EventHandler | None:
    return _handlers.get(event_type)


# --------------------------------------------------------------------------- storing


def event_payload(event: Event) -> dict[str, Any]:
    """The event in Stripe's own shape, whichever way it reached us."""
    data: dict[str, Any] = {"object": dict(event.data_object)}
    if event.previous_attributes is not None:
        data["previous_attributes"] = dict(event.previous_attributes)
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "account": event.account,
        "created": event.created,
        "livemode": event.livemode,
        "api_version": event.api_version,
        "pending_webhooks": event.pending_webhooks,
        "request": {"id": event.request_id, "idempotency_key": event.request_idempotency_key},
        "data": data,
    }


def store_event(event: Event, *, source: str = "webhook") -> bool:
    """Keep ``event`` once and queue its processing. True when it was new.

    Runs in the caller's transaction; the job runs only if that transaction commits.
    """
    values = {
        "id": event.id,
        "type": event.type,
        "account_id": event.account or "",
        "created": event.created,
        "livemode": event.livemode,
        "payload": event_payload(event),
        "source": source,
        "state": EventState.RECEIVED.value,
        "received_at": utcnow(),
        "attempts": 0,
        "last_error": "",
    }
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(StripeEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    )
    with unscoped():
        inserted = db.session.execute(statement).scalar_one_or_none()
        if inserted is None:
            return False
        outbox.enqueue(PROCESS_EVENT_JOB, queue=Queue.HIGH, event_id=event.id)
    return True


def receive_webhook(*, payload: bytes, signature: str, gateway: StripeGateway) -> bool:
    """Verify a webhook delivery and store its event (raises ``WebhookSignatureError``)."""
    event = gateway.construct_event(payload, signature)
    return store_event(event, source="webhook")


# --------------------------------------------------------------------------- processing


def organization_for_account(account_id: str | None) -> Organization | None:
    """The organization whose connected account this is, or None."""
    if not account_id:
        return None
    with unscoped():
        return db.session.execute(
            sa.select(Organization)
            .join(StripeAccount, StripeAccount.organization_id == Organization.id)
            .where(StripeAccount.account_id == account_id)
        ).scalar_one_or_none()


def stored_event(row: StripeEvent) -> Event:
    return Event.from_stripe(row.payload)


@outbox.register_job(PROCESS_EVENT_JOB, tenant=False, queue=Queue.HIGH)
def process_event(*, event_id: str) -> str:
    """Act on one stored event (idempotent: a processed or ignored event is left alone)."""
    row = db.session.execute(
        sa.select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.state in {EventState.PROCESSED.value, EventState.IGNORED.value}:
        return "skipped"
    row.attempts += 1
    organization = organization_for_account(row.account_id)
    if organization is None:
        # Another platform's account, a disconnected organization, or the platform's own events.
        logger.warning(
            "Stripe event %s (%s) for account %r: no organization owns it; ignored",
            row.id,
            row.type,
            row.account_id,
        )
        _finish(row, EventState.IGNORED, "no organization owns this account")
        return "ignored"
    row.organization_id = organization.id
    handler = _handlers.get(row.type)
    if handler is None:
        _finish(row, EventState.IGNORED, "")
        return "ignored"
    event = stored_event(row)
    try:
        with db.session.begin_nested(), tenant_scope(organization.id):
            handler(organization, event, current_gateway())
    except Exception as error:
        logger.exception("Stripe event %s (%s) failed", row.id, row.type)
        row.state = EventState.FAILED.value
        row.last_error = f"{type(error).__name__}: {error}"[:MAX_ERROR]
        db.session.flush()
        return "failed"
    _finish(row, EventState.PROCESSED, "")
    return "processed"


def _finish(row: StripeEvent, state: EventState, note: str) -> None:
    row.state = state.value
    row.processed_at = utcnow()
    row.last_error = note
    db.session.flush()


def events_to_retry(*, older_than: timedelta, limit: int = 200) -> list[str]:
    """Events a run left failed, or received but never processed (a lost job), worth another go."""
    cutoff = utcnow() - older_than
    with unscoped():
        return list(
            db.session.execute(
                sa.select(StripeEvent.id)
                .where(
                    StripeEvent.state.in_([EventState.FAILED.value, EventState.RECEIVED.value]),
                    StripeEvent.received_at <= cutoff,
                    StripeEvent.attempts < MAX_ATTEMPTS,
                )
                .order_by(StripeEvent.created, StripeEvent.id)
                .limit(limit)
            ).scalars()
        )


def payload_summary(payload: Mapping[str, Any]) -> str:
    """A short, log-safe description of an event payload (no personal data)."""
    data = payload.get("data") or {}
    obj = data.get("object") or {}
    return json.dumps(
        {"id": payload.get("id"), "type": payload.get("type"), "object": obj.get("id")},
        sort_keys=True,
    )
