"""Gapless numbers per organization: orders, invoices and credit notes.

A number is taken from the organization's row of the ``sequences`` table, read ``FOR UPDATE`` in
the transaction that creates the numbered record. The lock holds until that transaction ends:

- a commit keeps the number and frees the row for the next transaction, which then reads the
  incremented value;
- a rollback undoes the increment with everything else, so the number is given again: no gap.

Transactions that take numbers of one organization therefore queue on its row for the short end
of a checkout; other organizations never wait. Take numbers late in a transaction (after the
stock rows are locked and the input is validated) and always in the order orders, invoices,
credit notes, so two transactions never wait on each other crosswise.
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from comptoir.billing.models import NumberSequence
from comptoir.platform.db import db

ORDER = "order"
INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
FIRST_NUMBER = 1001


def _ensure_row(organization_id: int, name: str) -> None:
    table = cast(sa.Table, NumberSequence.__table__)
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(organization_id=organization_id, name=name, next_value=FIRST_NUMBER)
        .on_conflict_do_nothing(index_elements=["organization_id", "name"])
    )
    db.session.execute(statement)


def take_number(*, organization_id: int, name: str) -> int:
    """The next number of ``name`` for the organization, reserved until the transaction ends."""
    _ensure_row(organization_id, name)
    row = db.session.execute(
        sa.select(NumberSequence)
        .where(NumberSequence.organization_id == organization_id, NumberSequence.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    number = row.next_value
    row.next_value = number + 1
    db.session.flush()
    return number
