"""The transactional outbox and the job registry.

Work that must happen because of a change (an e-mail, an invoice PDF, a webhook to process) is
written as an :class:`OutboxMessage` row in the same transaction as the change. After the commit the
row is relayed to RQ (or, on the embedded default with no Redis, to an in-process thread). A sweep
(:func:`relay_pending`) re-relays rows that are still pending, so a flushed Redis or a crash between
commit and relay loses nothing. :func:`run_message` locks the row, skips it when already done, runs
the job and marks it done in one transaction: a job that runs twice does its work once.

Lower layers enqueue by job *name*; ``comptoir.jobs`` registers the functions behind the names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from comptoir.platform.db import BigId, IdMixin, JsonColumn, Model, UtcDateTime, db, utcnow
from comptoir.platform.tenancy import current_organization_id, tenant_scope, unscoped

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A pending row not run this long after its last relay is relayed again by the sweep.
RELAY_GRACE = timedelta(seconds=60)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Queue(StrEnum):
    """RQ queues by latency: a slow PDF must not hold up a password-reset e-mail."""

    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"


class OutboxMessage(IdMixin, Model):
    """A job owed to the system. Platform table: the relay sweep reads it across organizations."""

    __tablename__ = "outbox_messages"
    __table_args__ = (sa.Index("ix_outbox_messages_status_relayed", "status", "relayed_at"),)

    organization_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    job: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    arguments: Mapped[dict[str, Any]] = mapped_column(JsonColumn, nullable=False, default=dict)
    queue: Mapped[str] = mapped_column(sa.String(20), nullable=False, default=Queue.DEFAULT.value)
    status: Mapped[str] = mapped_column(
        sa.String(20), nullable=False, default=OutboxStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    relayed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class RegisteredJob:
    name: str
    function: Callable[..., Any]
    tenant: bool
    queue: Queue


_registry: dict[str, RegisteredJob] = {}


def register_job(
    name: str, *, tenant: bool, queue: Queue = Queue.DEFAULT
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        existing = _registry.get(name)
        if existing is not None and existing.function is not function:
            message = f"job {name!r} is registered twice"
            raise RuntimeError(message)
        _registry[name] = RegisteredJob(name=name, function=function, tenant=tenant, queue=queue)
        return function

    return decorator


def registered_job(name: str) -> RegisteredJob:
    try:
        return _registry[name]
    except KeyError:
        message = f"no job registered under {name!r}"
        raise LookupError(message) from None


def registered_jobs() -> dict[str, RegisteredJob]:
    return dict(_registry)


# --------------------------------------------------------------------------- enqueue


_NEW_KEY = "comptoir_outbox_new"


def enqueue(job: str, *, queue: Queue | None = None, **arguments: Any) -> OutboxMessage:
    """Owe a job, in the current transaction. It runs only if the transaction commits.

    Tenant jobs run in the organization in scope now; arguments must be JSON (ids, not objects).
    """
    registered = registered_job(job)
    organization_id = current_organization_id() if registered.tenant else None
    if registered.tenant and organization_id is None:
        message = f"tenant job {job!r} enqueued without an organization in scope"
        raise RuntimeError(message)
    message_row = OutboxMessage(
        organization_id=organization_id,
        job=job,
        arguments=arguments,
        queue=(queue or registered.queue).value,
        relayed_at=utcnow(),
    )
    db.session.add(message_row)
    db.session.flush()
    db.session.info.setdefault(_NEW_KEY, []).append((message_row.id, message_row.queue))
    return message_row


def _after_commit(session: Session) -> None:
    new = session.info.pop(_NEW_KEY, None)
    if not new:
        return
    dispatcher = current_dispatcher()
    if dispatcher is None:
        return  # nothing to relay to (e.g. a bare script); the sweep will pick them up
    for message_id, queue in new:
        try:
            dispatcher(message_id, queue)
        except Exception:
            # The row is committed: the relay sweep will send it again.
            logger.exception("outbox relay failed for message %s", message_id)


def _after_rollback(session: Session) -> None:
    session.info.pop(_NEW_KEY, None)


Dispatcher = Callable[[int, str], None]
DISPATCHER_EXTENSION = "comptoir_dispatcher"


def current_dispatcher() -> Dispatcher | None:
    """Where committed messages go: RQ, or the in-process runner (chosen by ``create_app``)."""
    if not has_app_context():
        return None
    dispatcher: Dispatcher | None = current_app.extensions.get(DISPATCHER_EXTENSION)
    return dispatcher


def install_outbox_hooks(session_class: Any) -> None:
    if event.contains(session_class, "after_commit", _after_commit):
        return
    event.listen(session_class, "after_commit", _after_commit)
    event.listen(session_class, "after_rollback", _after_rollback)


# --------------------------------------------------------------------------- run and sweep


class JobFailedError(RuntimeError):
    pass


def run_message(message_id: int) -> str:
    """Run one outbox message exactly once (idempotent; safe to call concurrently).

    Returns what happened: ``done``, ``skipped`` (already done or unknown) or raises the job's error
    after recording it, so that the queue's retry policy applies.
    """
    session = db.session
    with unscoped():
        row = session.execute(
            sa.select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.status == OutboxStatus.DONE.value:
            session.rollback()
            return "skipped"
        job = registered_job(row.job)
        organization_id = row.organization_id
        arguments = dict(row.arguments or {})
    try:
        if job.tenant:
            assert organization_id is not None
            with tenant_scope(organization_id):
                job.function(organization_id=organization_id, **arguments)
        else:
            with unscoped():
                job.function(**arguments)
        with unscoped():
            row.status = OutboxStatus.DONE.value
            row.done_at = utcnow()
            row.attempts += 1
            session.commit()
    except Exception as error:
        session.rollback()
        _record_failure(message_id, error)
        raise
    return "done"


def _record_failure(message_id: int, error: BaseException) -> None:
    with unscoped():
        row = db.session.get(OutboxMessage, message_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = f"{type(error).__name__}: {error}"[:4000]
        if row.attempts >= MAX_ATTEMPTS:
            row.status = OutboxStatus.FAILED.value
        db.session.commit()


def relay_pending(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send again every pending message whose last relay is older than the grace period."""
    dispatcher = current_dispatcher()
    if dispatcher is None:
        return 0
    now = now or utcnow()
    with unscoped():
        rows = (
            db.session.execute(
                sa.select(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING.value,
                    sa.or_(
                        OutboxMessage.relayed_at.is_(None),
                        OutboxMessage.relayed_at < now - RELAY_GRACE,
                    ),
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for row in rows:
            row.relayed_at = now
        pending = [(row.id, row.queue) for row in rows]
        db.session.commit()
    for message_id, queue in pending:
        dispatcher(message_id, queue)
    return len(pending)


def retry_failed(message_id: int) -> bool:
    """Operator action: give a failed message a fresh set of attempts."""
    with unscoped():
        row = db.session.get(OutboxMessage, message_id)
        if row is None or row.status != OutboxStatus.FAILED.value:
            return False
        row.status = OutboxStatus.PENDING.value
        row.attempts = 0
        row.relayed_at = None
        return True
