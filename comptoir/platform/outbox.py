"""The transactional outbox and the job registry.

Work that must happen because of a change (an e-mail, an invoice PDF, a webhook to process) is
written as an :class:`OutboxMessage` row in the same transaction as the change. After the commit the
row is relayed to RQ (or, on the embedded default with no Redis, to an in-process thread). A sweep
(:func:`relay_pending`, run by the scheduler) relays again every row still pending after a grace
period, so a flushed Redis or a crash between commit and relay loses nothing.

:func:`run_message` locks the row, skips it unless it is pending, runs the job and marks the row
done in one transaction with the job's own changes: a message that is delivered twice (the sweep
and RQ both sending it, an RQ job run twice, two workers at once) does its work once. A failing
job records its error and the time of its next attempt; after :data:`MAX_ATTEMPTS` the row is
``failed`` and waits for an operator (:func:`retry_failed`).

Lower layers enqueue by job *name*; ``comptoir.jobs`` registers the functions behind the names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from comptoir.platform.db import BigId, IdMixin, JsonColumn, Model, UtcDateTime, db, utcnow
from comptoir.platform.observability import job_context
from comptoir.platform.tenancy import current_organization_id, tenant_scope, unscoped

logger = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, ... failed attempt. RQ retries on the same schedule
# (``comptoir.platform.queue``); the sweep only steps in when a retry was lost with Redis.
RETRY_DELAYS: tuple[int, ...] = (10, 60, 300, 900)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A pending row not run this long after its (planned) relay is relayed again by the sweep.
RELAY_GRACE = timedelta(seconds=60)
# Pending this long after creation: shown to operators as stuck.
STALE_AFTER = timedelta(minutes=10)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Queue(StrEnum):
    """RQ queues by latency: a slow PDF must not hold up a password-reset e-mail.

    Workers listen to them in this order (highest priority first).
    """

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
    # When the message was last handed to a queue, or when its next retry is due.
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
    """Put a function behind a job name.

    A tenant job is called as ``function(organization_id=..., **arguments)`` inside that
    organization's scope; a platform job as ``function(**arguments)``, unscoped.
    """

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
    if registered.tenant and "organization_id" in arguments:
        message = f"tenant job {job!r} takes its organization from the scope, not an argument"
        raise TypeError(message)
    message_row = OutboxMessage(
        organization_id=organization_id,
        job=job,
        arguments=arguments,
        queue=(queue or registered.queue).value,
        status=OutboxStatus.PENDING.value,
        attempts=0,
        # The after-commit relay is the first one: the sweep leaves the row alone for a while.
        relayed_at=utcnow(),
    )
    db.session.add(message_row)
    db.session.flush()
    _relay_after_commit(message_row)
    return message_row


def _relay_after_commit(row: OutboxMessage) -> None:
    db.session.info.setdefault(_NEW_KEY, []).append((row.id, row.queue))


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the messages wait for the real commit
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
    # A savepoint rolled back keeps the list: relaying an id whose row was rolled back is a
    # harmless no-op (run_message skips unknown ids), losing a committed one is not.
    if not session.in_nested_transaction():
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


_running: ContextVar[int | None] = ContextVar("comptoir_outbox_running", default=None)


def running_message_id() -> int | None:
    """The outbox message whose job is running in this context, if any.

    Job wrappers use it to leave the commit to :func:`run_message` (one transaction per job).
    """
    return _running.get()


@contextmanager
def _running_message(message_id: int) -> Iterator[None]:
    token = _running.set(message_id)
    try:
        yield
    finally:
        _running.reset(token)


def run_message(message_id: int) -> str:
    """Run one outbox message exactly once (idempotent; safe to call concurrently).

    Returns what happened: ``done``, or ``skipped`` (unknown, already done, or failed and waiting
    for an operator). A failing job's error is recorded on the row, then raised again so that the
    queue's retry policy applies. The job's changes and the row's ``done`` commit together.
    """
    session = db.session
    with unscoped():
        # The row lock makes a concurrent run of the same message wait, then see it done.
        row = session.execute(
            sa.select(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is None or row.status != OutboxStatus.PENDING.value:
            session.rollback()
            return "skipped"
        organization_id = row.organization_id
        arguments = dict(row.arguments or {})
        job_name = row.job
    with job_context(job=job_name, message_id=message_id, organization_id=organization_id):
        try:
            job = registered_job(job_name)
            with _running_message(message_id):
                if job.tenant:
                    if organization_id is None:
                        error = f"tenant job {job_name!r} has no organization"
                        raise RuntimeError(error)
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
        logger.info("outbox message %s (%s) done", message_id, job_name)
    return "done"


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failure before the next attempt."""
    index = min(max(attempts, 1), len(RETRY_DELAYS)) - 1
    return timedelta(seconds=RETRY_DELAYS[index])


def _record_failure(message_id: int, error: BaseException) -> None:
    try:
        with unscoped():
            row = db.session.execute(
                sa.select(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if row is None:
                db.session.rollback()
                return
            row.attempts += 1
            row.last_error = f"{type(error).__name__}: {error}"[:4000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = OutboxStatus.FAILED.value
                logger.error(
                    "outbox message %s (%s) failed for good after %s attempts: %s",
                    message_id,
                    row.job,
                    row.attempts,
                    row.last_error,
                )
            else:
                # The queue retries after this delay; the sweep only if that retry is lost.
                row.relayed_at = utcnow() + retry_delay(row.attempts)
                logger.warning(
                    "outbox message %s (%s) failed (attempt %s of %s): %s",
                    message_id,
                    row.job,
                    row.attempts,
                    MAX_ATTEMPTS,
                    row.last_error,
                )
            db.session.commit()
    except Exception:
        db.session.rollback()
        logger.exception("could not record the failure of outbox message %s", message_id)


def relay_pending(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send again every pending message whose last (planned) relay is older than the grace period.

    Rows being run right now are locked and skipped. Returns how many messages were relayed.
    """
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
    relayed = 0
    for message_id, queue in pending:
        try:
            dispatcher(message_id, queue)
        except Exception:
            # Still pending: the next sweep tries again.
            logger.exception("outbox relay failed for message %s", message_id)
        else:
            relayed += 1
    if relayed:
        logger.info("outbox sweep relayed %s message(s)", relayed)
    return relayed


def retry_failed(message_id: int) -> bool:
    """Operator action: give a failed message a fresh set of attempts.

    Call it in a transaction; the message is relayed after the commit.
    """
    with unscoped():
        row = db.session.execute(
            sa.select(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is None or row.status != OutboxStatus.FAILED.value:
            return False
        row.status = OutboxStatus.PENDING.value
        row.attempts = 0
        row.relayed_at = utcnow()
        db.session.flush()
        _relay_after_commit(row)
        return True


def status_counts() -> dict[str, int]:
    """How many messages are in each state (operator console)."""
    with unscoped():
        rows = db.session.execute(
            sa.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
        ).all()
    counts = {status.value: 0 for status in OutboxStatus}
    counts.update({str(status): int(count) for status, count in rows})
    return counts
