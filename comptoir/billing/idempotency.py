"""``Idempotency-Key``: a POST that creates money records, sent twice, answers the first result.

The view claims the key first (:func:`claim`), in the transaction that will create the records:
an ``INSERT … ON CONFLICT DO NOTHING`` on ``(organization_id, key)``.

- It inserts: this request owns the key; it does its work and :func:`remember` stores the status
  and body in the same row before the one commit. A failure rolls the key back with the rest, so
  a retry runs again.
- Another request holds the same key uncommitted: the insert waits for it to end, then behaves as
  one of the other two cases. Two concurrent identical requests therefore make one record.
- The key exists: same fingerprint (method, route, canonical body) answers the stored response
  again; another fingerprint is refused with 409 and changes nothing.

The storefront's step 3 uses the same mechanism with a one-time nonce of the page's form, so a
double click makes one order. Rows older than :data:`RETENTION` are deleted by a sweep.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite

from comptoir.billing.models import IdempotencyKey
from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError, ValidationError

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Claim:
    """This request owns the key; pass it to :func:`remember` before committing."""

    id: int


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def fingerprint(method: str, route: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {route}\n{canonical}".encode()).hexdigest()


def check_key(key: str) -> str:
    if not _KEY.match(key):
        message = _("The Idempotency-Key must be 1 to 255 visible ASCII characters.")
        raise ValidationError(message, fields={HEADER: [message]})
    return key


def claim(*, organization_id: int, key: str, request_fingerprint: str) -> Claim | Replay:
    """Own ``key`` for this transaction, or get the response of the request that owned it."""
    check_key(key)
    table = cast(sa.Table, IdempotencyKey.__table__)
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = db.session.execute(
        insert(table)
        .values(
            organization_id=organization_id,
            key=key,
            fingerprint=request_fingerprint,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "key"])
        .returning(table.c.id)
    ).scalar_one_or_none()
    if inserted is not None:
        return Claim(id=int(inserted))
    row = db.session.execute(
        sa.select(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .execution_options(populate_existing=True)
    ).scalar_one()
    if row.fingerprint != request_fingerprint:
        raise ConflictError(
            _("This Idempotency-Key was used for another request; use a new key."),
            fields={HEADER: [_("Already used for another request.")]},
        )
    if row.response_status is None or row.response_body is None:  # pragma: no cover - defensive
        raise ConflictError(_("The first request with this Idempotency-Key did not finish."))
    return Replay(status=row.response_status, body=dict(row.response_body))


def remember(claimed: Claim, *, status: int, body: dict[str, Any]) -> None:
    db.session.execute(
        sa.update(IdempotencyKey)
        .where(IdempotencyKey.id == claimed.id)
        .values(response_status=status, response_body=body)
        .execution_options(synchronize_session=False)
    )


def purge_old(*, older_than: timedelta = RETENTION) -> int:
    """Delete keys past retention (cross-tenant: the caller runs it unscoped)."""
    result = db.session.execute(
        sa.delete(IdempotencyKey)
        .where(IdempotencyKey.created_at < utcnow() - older_than)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
