"""Stock holds: how a cart line keeps units, and how nothing ever oversells.

The invariant, per stock unit (an article without variants, or one variant)::

    sold + active holds <= stock        (stock NULL: unlimited)

Every write that makes a hold bigger or longer-lived (a new line, a higher quantity, a renewal,
staff moving an expiry, a checkout turning holds into sales) goes through the same steps, in one
short transaction that the caller commits:

1. lock exactly the stock unit rows concerned (``SELECT … FOR NO KEY UPDATE``, several in a
   stable order: articles, then variants, each by id). Never the organization, never a table:
   carts of other articles do not wait. ``NO KEY UPDATE`` rather than ``UPDATE`` because it
   serializes the hold takers just the same while leaving foreign-key checks of other rows that
   point at the article (order lines, images) unblocked;
2. re-read ``stock`` and ``sold`` from the locked row, and sum the *other* lines' active holds
   (``expires_at`` later than the database's clock at that statement);
3. write the hold only if the whole quantity fits.

A hold that only shrinks or goes away needs no lock. Time is always the database's clock in these
checks, so that the web processes, the sweep and the checkout agree on what has expired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask_babel import gettext as _

from comptoir.platform.db import db, utcnow
from comptoir.platform.errors import ConflictError
from comptoir.platform.tenancy import unscoped
from comptoir.storefront.cart_models import Cart, CartLine, CartStatus, StockHold
from comptoir.storefront.inventory import StockKey
from comptoir.storefront.models import Article, ArticleVariant

SWEEP_BATCH_SIZE = 5000


class OutOfStockError(ConflictError):
    code = "out_of_stock"

    def __init__(
        self, message: str, *, available: int = 0, fields: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message, fields=fields)
        self.available = available


def out_of_stock(available: int, field: str = "quantity") -> OutOfStockError:
    if available <= 0:
        message = _("Sorry, this is no longer available.")
    else:
        message = _("Only %(count)d left: choose a smaller quantity.", count=available)
    return OutOfStockError(message, available=max(available, 0), fields={field: [message]})


def _rowcount(result: sa.Result[Any]) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def key_of(line: CartLine) -> StockKey:
    return StockKey(line.article_id, line.variant_id)


def database_now() -> Any:
    """The database's clock at the current statement (PostgreSQL); the process's on SQLite."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.statement_timestamp()
    return sa.literal(utcnow(), StockHold.expires_at.type)


# --------------------------------------------------------------------------- stock unit rows


@dataclass(frozen=True)
class UnitState:
    stock: int | None
    sold: int

    def remaining(self, held: int) -> int | None:
        if self.stock is None:
            return None
        return self.stock - self.sold - held


def _unit_rows(keys: Iterable[StockKey], *, lock: bool) -> dict[StockKey, UnitState]:
    wanted = sorted(set(keys), key=lambda k: (k.variant_id is not None, k.variant_id or 0, k))
    article_ids = [k.article_id for k in wanted if k.variant_id is None]
    variant_ids = [k.variant_id for k in wanted if k.variant_id is not None]
    states: dict[StockKey, UnitState] = {}
    # Articles first, then variants, each in id order: two transactions that need the same rows
    # take them in the same order and cannot deadlock.
    if article_ids:
        articles = (
            sa.select(Article.id, Article.stock, Article.sold)
            .where(Article.id.in_(article_ids))
            .order_by(Article.id)
        )
        if lock:
            articles = articles.with_for_update(key_share=True)
        for article_id, stock, sold in db.session.execute(articles):
            states[StockKey(article_id)] = UnitState(stock, sold)
    if variant_ids:
        query = (
            sa.select(
                ArticleVariant.id,
                ArticleVariant.article_id,
                ArticleVariant.stock,
                ArticleVariant.sold,
            )
            .where(ArticleVariant.id.in_(variant_ids))
            .order_by(ArticleVariant.id)
        )
        if lock:
            query = query.with_for_update(key_share=True)
        for variant_id, article_id, stock, sold in db.session.execute(query):
            states[StockKey(article_id, variant_id)] = UnitState(stock, sold)
    return states


def lock_units(keys: Iterable[StockKey]) -> dict[StockKey, UnitState]:
    """Lock the stock unit rows of ``keys`` until the transaction ends; their current values."""
    return _unit_rows(keys, lock=True)


def read_units(keys: Iterable[StockKey]) -> dict[StockKey, UnitState]:
    """The same values without a lock: for display only, never to decide a hold."""
    return _unit_rows(keys, lock=False)


def _unit_condition(key: StockKey) -> Any:
    variant = (
        StockHold.variant_id.is_(None)
        if key.variant_id is None
        else StockHold.variant_id == key.variant_id
    )
    return sa.and_(StockHold.article_id == key.article_id, variant)


def held_by_others(key: StockKey, *, cart_id: int | None) -> int:
    """Units of ``key`` held by active holds of carts other than ``cart_id``."""
    query = sa.select(sa.func.coalesce(sa.func.sum(StockHold.quantity), 0)).where(
        _unit_condition(key), StockHold.expires_at > database_now()
    )
    if cart_id is not None:
        query = query.where(StockHold.cart_id != cart_id)
    return int(db.session.execute(query).scalar_one())


def held_by_others_many(keys: Sequence[StockKey], *, cart_id: int) -> dict[StockKey, int]:
    """:func:`held_by_others` for several keys in one grouped statement."""
    if not keys:
        return {}
    rows = db.session.execute(
        sa.select(StockHold.article_id, StockHold.variant_id, sa.func.sum(StockHold.quantity))
        .where(
            StockHold.article_id.in_(sorted({k.article_id for k in keys})),
            StockHold.expires_at > database_now(),
            StockHold.cart_id != cart_id,
        )
        .group_by(StockHold.article_id, StockHold.variant_id)
    ).all()
    totals = {StockKey(a, v): int(total) for a, v, total in rows}
    return {key: totals.get(key, 0) for key in keys}


# --------------------------------------------------------------------------- holding


def ensure_room(*, cart: Cart, key: StockKey, quantity: int) -> None:
    """Lock ``key``'s row and check that ``quantity`` units fit beside the other carts' holds.

    The lock lasts until the transaction ends, so the hold written next cannot be overtaken.
    """
    _commit_without_waiting_for_disk()
    state = lock_units([key]).get(key)
    if state is None:
        raise out_of_stock(0)
    remaining = state.remaining(held_by_others(key, cart_id=cart.id))
    if remaining is not None and remaining < quantity:
        raise out_of_stock(remaining)


def hold_new_line(*, cart: Cart, line: CartLine, quantity: int) -> None:
    """Hold ``quantity`` units for a line that has no hold yet, or raise out of stock.

    The hot path of adding to a cart, so the locked part is two statements: the row lock, then
    one ``INSERT … SELECT … WHERE`` that writes the hold only if it fits beside the other carts'
    active holds. That statement starts after the lock is granted, so it sees every hold
    committed before; what it does not see cannot commit before this transaction ends.
    """
    _commit_without_waiting_for_disk()
    key = key_of(line)
    state = lock_units([key]).get(key)
    if state is None:
        raise out_of_stock(0)
    if state.stock is None:
        write_hold(cart=cart, line=line, quantity=quantity, new=True)
        return
    others = (
        sa.select(sa.func.coalesce(sa.func.sum(StockHold.quantity), 0))
        .where(
            _unit_condition(key),
            StockHold.expires_at > database_now(),
            StockHold.cart_id != cart.id,
        )
        .scalar_subquery()
    )
    values = {
        "organization_id": sa.literal(cart.organization_id, StockHold.organization_id.type),
        "cart_id": sa.literal(cart.id, StockHold.cart_id.type),
        "cart_line_id": sa.literal(line.id, StockHold.cart_line_id.type),
        "article_id": sa.literal(line.article_id, StockHold.article_id.type),
        "variant_id": sa.literal(line.variant_id, StockHold.variant_id.type),
        "quantity": sa.literal(quantity, StockHold.quantity.type),
        "expires_at": sa.literal(cart.expires_at, StockHold.expires_at.type),
    }
    room = sa.literal(state.stock - state.sold, sa.Integer) - others
    inserted = db.session.execute(
        sa.insert(StockHold)
        .from_select(list(values), sa.select(*values.values()).where(room >= quantity))
        .returning(StockHold.id)
    ).first()
    if inserted is None:
        raise out_of_stock(state.remaining(held_by_others(key, cart_id=cart.id)) or 0)


def _commit_without_waiting_for_disk() -> None:
    """Let this transaction's commit return before its WAL reaches the disk.

    The row lock is held until the commit returns; waiting for the disk flush there would make
    every other customer of a popular article queue behind each flush. A hold may be lost this
    way if PostgreSQL crashes in the next fraction of a second: that frees the units (nothing is
    promised twice), and anything durable that depends on the hold (the checkout's synchronous
    commit, later in the same WAL) makes it durable too. Sales never use this.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SET LOCAL synchronous_commit TO off"))


def hold_line(*, cart: Cart, line: CartLine, quantity: int) -> None:
    """Make ``line`` hold ``quantity`` units until the cart expires, or raise out of stock.

    ``line`` must be flushed (it has an id). Lowering a quantity never fails and takes no lock.
    """
    current = db.session.execute(
        sa.select(StockHold.quantity).where(StockHold.cart_line_id == line.id)
    ).scalar_one_or_none()
    if current is None or quantity > current:
        ensure_room(cart=cart, key=key_of(line), quantity=quantity)
    write_hold(cart=cart, line=line, quantity=quantity)


def write_hold(*, cart: Cart, line: CartLine, quantity: int, new: bool = False) -> None:
    """Set the line's hold (after :func:`ensure_room`, or when it only shrinks).

    ``new``: the line was just created, so it has no hold to update yet.
    """
    updated = 0
    if not new:
        updated = _rowcount(
            db.session.execute(
                sa.update(StockHold)
                .where(StockHold.cart_line_id == line.id)
                .values(quantity=quantity, expires_at=cart.expires_at)
                .execution_options(synchronize_session=False)
            )
        )
    if updated == 0:
        # New line, or its hold was swept: (re)create it.
        db.session.execute(
            sa.insert(StockHold).values(
                organization_id=cart.organization_id,
                cart_id=cart.id,
                cart_line_id=line.id,
                article_id=line.article_id,
                variant_id=line.variant_id,
                quantity=quantity,
                expires_at=cart.expires_at,
            )
        )


def release_line(line: CartLine) -> None:
    db.session.execute(
        sa.delete(StockHold)
        .where(StockHold.cart_line_id == line.id)
        .execution_options(synchronize_session=False)
    )


def release_cart(cart: Cart) -> None:
    db.session.execute(
        sa.delete(StockHold)
        .where(StockHold.cart_id == cart.id)
        .execution_options(synchronize_session=False)
    )


def _check_all_fit(cart: Cart, lines: Sequence[CartLine]) -> dict[StockKey, UnitState]:
    """Lock every unit of ``lines`` and check that each line's whole quantity fits."""
    keys = [key_of(line) for line in lines]
    states = lock_units(keys)
    others = held_by_others_many(keys, cart_id=cart.id)
    fields: dict[str, list[str]] = {}
    first: OutOfStockError | None = None
    for line in lines:
        key = key_of(line)
        state = states.get(key)
        remaining = 0 if state is None else state.remaining(others[key])
        if remaining is not None and remaining < line.quantity:
            error = out_of_stock(remaining)
            fields[f"lines.{line.id}.quantity"] = [error.message]
            first = first or error
    if first is not None:
        raise OutOfStockError(first.message, available=first.available, fields=fields)
    return states


def rehold_cart(*, cart: Cart, lines: Sequence[CartLine]) -> None:
    """Hold every line again until ``cart.expires_at`` (renewal, staff expiry, revival).

    All or nothing: when a unit no longer has room for its line, nothing changes and
    :class:`OutOfStockError` names the lines (``lines.<id>.quantity``).
    """
    if lines:
        _check_all_fit(cart, lines)
    release_cart(cart)
    if lines:
        db.session.execute(
            sa.insert(StockHold),
            [
                {
                    "organization_id": cart.organization_id,
                    "cart_id": cart.id,
                    "cart_line_id": line.id,
                    "article_id": line.article_id,
                    "variant_id": line.variant_id,
                    "quantity": line.quantity,
                    "expires_at": cart.expires_at,
                }
                for line in lines
            ],
        )


def sell_cart(*, cart: Cart, lines: Sequence[CartLine]) -> None:
    """Turn the cart's holds into sales: ``sold`` grows by each line, the holds go.

    For the checkout, in its transaction. A cart that expired meanwhile still sells when its
    units are free; otherwise :class:`OutOfStockError` and nothing changes.
    """
    if not lines:
        return
    _check_all_fit(cart, lines)
    for line in lines:
        if line.variant_id is None:
            table: Any = Article
            row_id = line.article_id
        else:
            table = ArticleVariant
            row_id = line.variant_id
        db.session.execute(
            sa.update(table)
            .where(table.id == row_id)
            .values(sold=table.sold + line.quantity)
            .execution_options(synchronize_session=False)
        )
    release_cart(cart)


# --------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class SweepResult:
    holds_deleted: int
    carts_expired: int
    batches: int

    def __str__(self) -> str:
        return (
            f"{self.holds_deleted} expired hold(s) deleted in {self.batches} batch(es), "
            f"{self.carts_expired} cart(s) marked expired"
        )


# On PostgreSQL the sweep walks the holds table in ranges of pages (a TID range scan: no index
# lookups, each row read once), about SWEEP_BATCH_SIZE rows per range, one transaction each, sent
# as one round trip with its settings (across organizations; a commit that does not wait for the
# disk; a short lock timeout) and its COMMIT. A range where a cart holds a row lock right now
# (a renewal of an expired cart, say) times out at once and is done again with SKIP LOCKED, which
# leaves those rows to the next run: the sweep never waits for a cart.
_ROWS_PER_PAGE = 100
_BATCH_SETTINGS = (
    "SELECT set_config('comptoir.unscoped', 'on', true), "
    "set_config('comptoir.organization_id', '', true), "
    "set_config('synchronous_commit', 'off', true), "
    "set_config('lock_timeout', '50ms', true)"
)
_DELETE_RANGE = (
    "DELETE FROM stock_holds WHERE ctid >= {first}::tid AND ctid < {last}::tid"
    " AND expires_at <= {cutoff}"
)
_DELETE_RANGE_SKIP_LOCKED = (
    "DELETE FROM stock_holds WHERE ctid = ANY(ARRAY("
    " SELECT ctid FROM stock_holds WHERE ctid >= {first}::tid AND ctid < {last}::tid"
    " AND expires_at <= {cutoff} FOR UPDATE SKIP LOCKED))"
)
_EXPIRE_CARTS_BATCH = (
    "UPDATE carts SET status = 'expired', updated_at = {now} WHERE ctid = ANY(ARRAY("
    " SELECT ctid FROM carts WHERE status = 'active' AND expires_at <= {cutoff}"
    " LIMIT {batch} FOR UPDATE SKIP LOCKED))"
)


def _script(statement: str, values: dict[str, Any]) -> Any:
    from psycopg import sql

    return sql.SQL("; ").join(
        [
            sql.SQL(_BATCH_SETTINGS),
            sql.SQL(statement).format(**{k: sql.Literal(v) for k, v in values.items()}),
            sql.SQL("COMMIT"),
        ]
    )


def _run_script(raw: Any, statement: str, values: dict[str, Any]) -> int:
    """Run one batch (settings, statement, commit) in one round trip; answers its row count."""
    cursor = raw.cursor()
    # Several statements without parameters: sent and run as one simple query.
    cursor.execute(_script(statement, values).as_string(raw.driver_connection))
    cursor.nextset()
    return int(cursor.rowcount)


def _sweep_postgresql(cutoff: datetime, batch_size: int) -> tuple[int, int, int]:
    from psycopg.errors import LockNotAvailable

    pages_per_batch = max(1, batch_size // _ROWS_PER_PAGE)
    raw = db.engine.raw_connection()
    deleted = expired = batches = 0
    try:
        cursor = raw.cursor()
        cursor.execute(
            "SELECT pg_relation_size('stock_holds') / current_setting('block_size')::int"
        )
        row = cursor.fetchone()
        pages = int(row[0]) if row else 0
        raw.rollback()
        for first_page in range(0, pages, pages_per_batch):
            values = {
                "first": f"({first_page},0)",
                "last": f"({first_page + pages_per_batch},0)",
                "cutoff": cutoff,
            }
            try:
                deleted += _run_script(raw, _DELETE_RANGE, values)
            except LockNotAvailable:
                raw.rollback()
                deleted += _run_script(raw, _DELETE_RANGE_SKIP_LOCKED, values)
            batches += 1
        while True:
            count = _run_script(
                raw, _EXPIRE_CARTS_BATCH, {"cutoff": cutoff, "now": utcnow(), "batch": batch_size}
            )
            expired += count
            if count < batch_size:
                break
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return deleted, expired, batches


def _sweep_sqlite(cutoff: datetime, batch_size: int) -> tuple[int, int, int]:
    deleted = expired = batches = 0
    while True:
        expired_ids = (
            sa.select(StockHold.id)
            .where(StockHold.expires_at <= cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        count = _rowcount(
            db.session.execute(
                sa.delete(StockHold)
                .where(StockHold.id.in_(expired_ids))
                .execution_options(synchronize_session=False)
            )
        )
        db.session.commit()
        deleted += count
        batches += 1
        if count < batch_size:
            break
    while True:
        due_ids = (
            sa.select(Cart.id)
            .where(Cart.status == CartStatus.ACTIVE, Cart.expires_at <= cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        count = _rowcount(
            db.session.execute(
                sa.update(Cart)
                .where(Cart.id.in_(due_ids))
                .values(status=CartStatus.EXPIRED, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        )
        db.session.commit()
        expired += count
        if count < batch_size:
            break
    return deleted, expired, batches


def sweep_expired(
    *, batch_size: int = SWEEP_BATCH_SIZE, now: datetime | None = None
) -> SweepResult:
    """Delete expired holds and mark carts whose time is up, across organizations.

    Commits after each batch. Rows another transaction has locked are skipped (``SKIP LOCKED``)
    and left for the next run, so the sweep never waits for a cart, and no cart waits long for
    the sweep: availability already ignores these holds by time, this is only housekeeping. For
    the same reason a batch's commit does not wait for the disk: a crash can only undo some
    deletions, which the next run makes again.
    """
    session = db.session
    session.commit()
    with unscoped():
        if session.get_bind().dialect.name != "postgresql":
            # SQLite's clock answers a naive text timestamp; the process's clock is the same one.
            deleted, expired, batches = _sweep_sqlite(now or utcnow(), batch_size)
            return SweepResult(holds_deleted=deleted, carts_expired=expired, batches=batches)
        # One cutoff for the whole run, on the database's clock: what expires meanwhile waits.
        cutoff = now or session.execute(sa.select(sa.func.now())).scalar_one()
        session.commit()
    deleted, expired, batches = _sweep_postgresql(cutoff, batch_size)
    return SweepResult(holds_deleted=deleted, carts_expired=expired, batches=batches)
