"""Job health in the operator console: the outbox's failed and stuck messages, RQ's queues.

A failed message (``outbox.MAX_ATTEMPTS`` attempts used) waits here with its error until an
operator retries it, typically after fixing what made it fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from jinja2 import TemplateNotFound
from redis.exceptions import RedisError

from comptoir.platform import outbox
from comptoir.platform.db import db, utcnow
from comptoir.platform.outbox import OutboxMessage, OutboxStatus
from comptoir.platform.queue import redis_connection, rq_queues
from comptoir.platform.settings import current_settings
from comptoir.tenants.guards import operator_required
from comptoir.tenants.models import Organization

blueprint = Blueprint("jobs_operators", __name__, template_folder="../templates")

LIST_LIMIT = 100
OPERATOR_LAYOUT = "tenants/operators/layout.html"


@dataclass(frozen=True)
class MessageRow:
    message: OutboxMessage
    organization_slug: str | None


@dataclass(frozen=True)
class QueueHealth:
    name: str
    queued: int
    scheduled: int
    failed: int


def _messages(condition: Any, order: Any) -> list[MessageRow]:
    rows = db.session.execute(
        sa.select(OutboxMessage, Organization.slug)
        .outerjoin(Organization, Organization.id == OutboxMessage.organization_id)
        .where(condition)
        .order_by(order)
        .limit(LIST_LIMIT)
    ).all()
    return [MessageRow(message=message, organization_slug=slug) for message, slug in rows]


def _queue_health() -> tuple[list[QueueHealth], str | None]:
    url = current_settings().redis_url
    if not url:
        return [], None
    connection = redis_connection(url, timeout=2.0)
    try:
        return [
            QueueHealth(
                name=queue.name,
                queued=queue.count,
                scheduled=queue.scheduled_job_registry.count,
                failed=queue.failed_job_registry.count,
            )
            for queue in rq_queues(connection)
        ], None
    except RedisError as error:
        return [], f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def _layout() -> str:
    # The console's sidebar frame when the tenants domain provides it; the bare page otherwise.
    try:
        current_app.jinja_env.get_template(OPERATOR_LAYOUT)
    except TemplateNotFound:
        return "base.html"
    return OPERATOR_LAYOUT


@blueprint.get("/")
@operator_required
def index() -> Any:
    stale_before = utcnow() - outbox.STALE_AFTER
    failed = _messages(OutboxMessage.status == OutboxStatus.FAILED.value, OutboxMessage.id.desc())
    stuck = _messages(
        sa.and_(
            OutboxMessage.status == OutboxStatus.PENDING.value,
            sa.or_(OutboxMessage.created_at < stale_before, OutboxMessage.attempts > 0),
        ),
        OutboxMessage.id,
    )
    queues, redis_problem = _queue_health()
    return render_template(
        "jobs/index.html",
        layout_template=_layout(),
        active_nav="jobs",
        counts=outbox.status_counts(),
        failed=failed,
        stuck=stuck,
        queues=queues,
        redis_configured=bool(current_settings().redis_url),
        redis_problem=redis_problem,
        max_attempts=outbox.MAX_ATTEMPTS,
        stale_minutes=int(outbox.STALE_AFTER.total_seconds() // 60),
    )


@blueprint.post("/<int:message_id>/retry")
@operator_required
def retry(message_id: int) -> Any:
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    if outbox.retry_failed(message_id):
        db.session.commit()  # the message is relayed to its queue after this commit
        flash(_("Message %(id)s will be tried again.", id=message_id), "success")
    else:
        db.session.rollback()
        flash(_("Message %(id)s is not failed; nothing to retry.", id=message_id), "error")
    return redirect(url_for(".index"))
