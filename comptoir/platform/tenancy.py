"""Enforced tenancy: the current organization, the ORM guard and PostgreSQL row-level security.

Two walls keep organizations apart:

1. An ORM hook adds ``organization_id = <current>`` to every query on a tenant model, stamps new
   tenant rows with the current organization and raises when no organization is in scope.
2. On PostgreSQL, every tenant table has ``FORCE ROW LEVEL SECURITY`` with a policy that reads the
   transaction-local settings ``comptoir.organization_id`` and ``comptoir.unscoped``; the session
   keeps them in step with the Python scope (``SET LOCAL`` semantics: ``set_config(.., true)``).

Cross-tenant work (operator console, sweeps) says so with :func:`unscoped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from comptoir.platform.db import TenantMixin

ORGANIZATION_SETTING = "comptoir.organization_id"
UNSCOPED_SETTING = "comptoir.unscoped"


class TenancyError(RuntimeError):
    """A tenant model was touched without an organization in scope, or across organizations."""


@dataclass(frozen=True)
class Scope:
    organization_id: int | None = None
    unscoped: bool = False


_NO_SCOPE = Scope()
_current_scope: ContextVar[Scope] = ContextVar("comptoir_tenant_scope", default=_NO_SCOPE)


def current_scope() -> Scope:
    return _current_scope.get()


def current_organization_id() -> int | None:
    return _current_scope.get().organization_id


def require_organization_id() -> int:
    organization_id = _current_scope.get().organization_id
    if organization_id is None:
        message = "no organization in scope"
        raise TenancyError(message)
    return organization_id


@contextmanager
def tenant_scope(organization_id: int) -> Iterator[None]:
    """Run the block as one organization (a request, a job)."""
    token = _current_scope.set(Scope(organization_id=organization_id))
    try:
        yield
    finally:
        _current_scope.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Run the block across organizations: operator console, sweeps, migrations of data."""
    token = _current_scope.set(Scope(unscoped=True))
    try:
        yield
    finally:
        _current_scope.reset(token)


@contextmanager
def no_scope() -> Iterator[None]:
    token = _current_scope.set(_NO_SCOPE)
    try:
        yield
    finally:
        _current_scope.reset(token)


def enter_scope(scope: Scope) -> Any:
    """For request hooks that cannot use a ``with`` block; pair with :func:`leave_scope`."""
    return _current_scope.set(scope)


def leave_scope(token: Any) -> None:
    _current_scope.reset(token)


# --------------------------------------------------------------------------- ORM guard


def _touches_tenant_model(state: ORMExecuteState) -> bool:
    return any(issubclass(mapper.class_, TenantMixin) for mapper in state.all_mappers)


def _on_orm_execute(state: ORMExecuteState) -> None:
    scope = _current_scope.get()
    if _uses_row_level_security(state.session):
        _sync_row_level_security(state.session, scope)
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if scope.unscoped or not _touches_tenant_model(state):
        return
    if scope.organization_id is None:
        entities = ", ".join(sorted(m.class_.__name__ for m in state.all_mappers))
        message = f"query on tenant model(s) {entities} without an organization in scope"
        raise TenancyError(message)
    organization_id = scope.organization_id
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantMixin,
            lambda cls: cls.organization_id == organization_id,
            include_aliases=True,
            track_closure_variables=False,
        )
    )


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    scope = _current_scope.get()
    for instance in session.new:
        if not isinstance(instance, TenantMixin):
            continue
        if scope.unscoped:
            if instance.organization_id is None:
                message = f"new {type(instance).__name__} needs an organization_id when unscoped"
                raise TenancyError(message)
            continue
        if scope.organization_id is None:
            message = f"new {type(instance).__name__} without an organization in scope"
            raise TenancyError(message)
        if instance.organization_id is None:
            instance.organization_id = scope.organization_id
        elif instance.organization_id != scope.organization_id:
            message = f"new {type(instance).__name__} belongs to another organization"
            raise TenancyError(message)
    for instance in session.dirty:
        if (
            isinstance(instance, TenantMixin)
            and not scope.unscoped
            and instance.organization_id != scope.organization_id
        ):
            message = f"{type(instance).__name__} changed outside its organization's scope"
            raise TenancyError(message)
    if _uses_row_level_security(session):
        _sync_row_level_security(session, scope)


# --------------------------------------------------------------------------- row-level security

_APPLIED_KEY = "comptoir_rls_scope"


def _uses_row_level_security(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "postgresql"


def _apply(connection: sa.Connection, scope: Scope) -> None:
    connection.execute(
        sa.text(
            "SELECT set_config(:org_key, :org, true), set_config(:unscoped_key, :unscoped, true)"
        ),
        {
            "org_key": ORGANIZATION_SETTING,
            "org": "" if scope.organization_id is None else str(scope.organization_id),
            "unscoped_key": UNSCOPED_SETTING,
            "unscoped": "on" if scope.unscoped else "off",
        },
    )


def _after_begin(session: Session, transaction: Any, connection: sa.Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    scope = _current_scope.get()
    _apply(connection, scope)
    session.info[_APPLIED_KEY] = scope


def _sync_row_level_security(session: Session, scope: Scope) -> None:
    """Keep the transaction's settings equal to the Python scope when it changes mid-transaction."""
    if not session.in_transaction():
        return  # after_begin will apply the scope when the transaction starts
    if session.info.get(_APPLIED_KEY) == scope:
        return
    _apply(session.connection(), scope)
    session.info[_APPLIED_KEY] = scope


def _forget_applied(session: Session, *args: Any) -> None:
    session.info.pop(_APPLIED_KEY, None)


def install_tenancy_guard(session_class: type[Session] | Any) -> None:
    """Attach the hooks to a session class or factory (idempotent)."""
    if event.contains(session_class, "do_orm_execute", _on_orm_execute):
        return
    event.listen(session_class, "do_orm_execute", _on_orm_execute)
    event.listen(session_class, "before_flush", _before_flush)
    event.listen(session_class, "after_begin", _after_begin)
    event.listen(session_class, "after_commit", _forget_applied)
    event.listen(session_class, "after_rollback", _forget_applied)
    event.listen(session_class, "after_soft_rollback", _forget_applied)


# --------------------------------------------------------------------------- DDL for migrations


def rls_predicate(column: str = "organization_id") -> str:
    return (
        f"(current_setting('{UNSCOPED_SETTING}', true) = 'on' OR "
        f"{column} = NULLIF(current_setting('{ORGANIZATION_SETTING}', true), '')::bigint)"
    )


def enable_row_level_security_sql(table: str) -> list[str]:
    predicate = rls_predicate()
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING {predicate} WITH CHECK {predicate}",
    ]


def disable_row_level_security_sql(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def enable_row_level_security(op: Any, tables: Iterable[str]) -> None:
    """In a migration's upgrade: put ``tables`` under the tenant policy (PostgreSQL only; SQLite
    has no row-level security and relies on the session guard alone)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        for statement in enable_row_level_security_sql(table):
            op.execute(statement)


def disable_row_level_security(op: Any, tables: Iterable[str]) -> None:
    """In a migration's downgrade: take ``tables`` out of the tenant policy (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        for statement in disable_row_level_security_sql(table):
            op.execute(statement)
