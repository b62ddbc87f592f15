"""The SQLAlchemy base, the tenant mixin and the column helpers every domain uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

# Named constraints make Alembic autogenerate and downgrades deterministic on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonColumn = sa.JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# Models subclass ``Model``: at run time Flask-SQLAlchemy's ``db.Model``; for mypy, the declarative
# base it is built from (mypy cannot see through ``db.Model``).
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware datetimes everywhere, SQLite included (it forgets the offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            message = "naive datetime given; use comptoir.platform.db.utcnow()"
            raise ValueError(message)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class TenantMixin(IdMixin):
    """A row that belongs to one organization.

    The tenancy guard (``comptoir.platform.tenancy``) filters every ORM query on these models by
    the current organization and stamps new rows with it. ``(organization_id, id)`` is unique so
    that other tenant tables can reference a row with a foreign key that carries the organization:
    the database then refuses a reference into another organization.
    """

    __tenant_table__ = True

    @declared_attr
    def organization_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(
            BigId, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
        )

    @classmethod
    def tenant_table_args(cls, *args: Any) -> tuple[Any, ...]:
        """``__table_args__`` with the ``(organization_id, id)`` key other tables point at."""
        return (sa.UniqueConstraint("organization_id", "id"), *args)


def tenant_foreign_key(
    columns: list[str], target_table: str, *, ondelete: str | None = None, name: str | None = None
) -> sa.ForeignKeyConstraint:
    """A foreign key from ``(organization_id, <column>)`` to ``target(organization_id, id)``."""
    return sa.ForeignKeyConstraint(
        ["organization_id", *columns],
        [f"{target_table}.organization_id", f"{target_table}.id"],
        ondelete=ondelete,
        name=name,
    )


def is_tenant_model(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, TenantMixin)


@sa.event.listens_for(sa.Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite checks foreign keys (the composite tenant keys included) only when asked to."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
