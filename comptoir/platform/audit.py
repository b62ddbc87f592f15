"""The audit trail: who did what to which row, with the values before and after.

Services call :func:`record` next to the change they make, in the same transaction, so an entry
exists exactly when the change does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import g, has_request_context, request
from sqlalchemy.orm import Mapped, mapped_column

from comptoir.platform.db import BigId, JsonColumn, Model, TenantMixin, UtcDateTime, db, utcnow


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, an API key, or the system (jobs, CLI)."""

    label: str
    user_id: int | None = None
    api_key_id: int | None = None
    role: str | None = None
    is_operator: bool = False

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(label=label)


class AuditLog(TenantMixin, Model):
    __tablename__ = "audit_logs"
    __table_args__ = (
        *TenantMixin.tenant_table_args(),
        sa.Index("ix_audit_logs_org_created", "organization_id", "created_at"),
    )

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    action: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    actor_label: Mapped[str] = mapped_column(sa.String(254), nullable=False)
    actor_user_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_api_key_id: Mapped[int | None] = mapped_column(BigId)
    target_type: Mapped[str] = mapped_column(sa.String(50), default="", nullable=False)
    target_id: Mapped[str] = mapped_column(sa.String(64), default="", nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn)
    request_id: Mapped[str] = mapped_column(sa.String(64), default="", nullable=False)
    ip_address: Mapped[str] = mapped_column(sa.String(64), default="", nullable=False)


def record(
    *,
    organization_id: int,
    actor: Actor,
    action: str,
    target: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit entry to the current transaction. ``action`` is a dotted name."""
    entry = AuditLog(
        organization_id=organization_id,
        action=action,
        actor_label=actor.label,
        actor_user_id=actor.user_id,
        actor_api_key_id=actor.api_key_id,
        target_type=type(target).__name__.lower() if target is not None else "",
        target_id=str(getattr(target, "id", "") or ""),
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=g.get("request_id", "") if has_request_context() else "",
        ip_address=(request.remote_addr or "") if has_request_context() else "",
    )
    db.session.add(entry)
    return entry


def snapshot(obj: Any, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {key: _plain(value) for key, value in values.items()}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
