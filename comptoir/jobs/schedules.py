"""Periodic sweeps: what the scheduler runs, and how often.

A domain adds its sweep where its jobs live (``comptoir/jobs/<domain>.py``, imported by
``comptoir/jobs/__init__.py``)::

    @schedule("storefront.expire_carts", every=60)
    def expire_carts() -> int:
        with unscoped():
            rows = db.session.execute(select(Cart.organization_id, Cart.id).where(...)).all()
        db.session.rollback()
        for organization_id, cart_id in rows:
            expire_cart(organization_id=organization_id, cart_id=cart_id)  # a tenant_job
        return len(rows)

An entry runs in an app context of its own: the scheduler commits when it returns and rolls
back when it raises (a failure is logged; the next tick tries again). By default entries run in
the scheduler process itself. An entry given ``queue=`` is sent to that RQ queue instead when
Redis is configured (for sweeps too slow for the scheduler's loop); without Redis it runs inline.
Entries must be idempotent and cheap to repeat: after a crash, a new leader starts them all over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comptoir.platform import outbox
from comptoir.platform.outbox import Queue
from comptoir.storefront import holds


@dataclass(frozen=True)
class ScheduleEntry:
    name: str
    interval: float  # seconds between the starts of two runs
    function: Callable[[], Any]
    queue: Queue | None = None


_entries: dict[str, ScheduleEntry] = {}


def register_schedule(entry: ScheduleEntry) -> ScheduleEntry:
    existing = _entries.get(entry.name)
    if existing is not None and existing != entry:
        message = f"schedule {entry.name!r} is registered twice"
        raise RuntimeError(message)
    if entry.interval <= 0:
        message = f"schedule {entry.name!r} needs a positive interval"
        raise ValueError(message)
    _entries[entry.name] = entry
    return entry


def schedule(
    name: str, *, every: float, queue: Queue | None = None
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Run the decorated function every ``every`` seconds on the active scheduler."""

    def decorator(function: Callable[[], Any]) -> Callable[[], Any]:
        register_schedule(ScheduleEntry(name=name, interval=every, function=function, queue=queue))
        return function

    return decorator


def schedule_entries() -> list[ScheduleEntry]:
    return list(_entries.values())


def schedule_entry(name: str) -> ScheduleEntry:
    try:
        return _entries[name]
    except KeyError:
        message = f"no schedule named {name!r}"
        raise LookupError(message) from None


# --------------------------------------------------------------------------- the platform's own

OUTBOX_RELAY_INTERVAL = 30


@schedule("outbox.relay", every=OUTBOX_RELAY_INTERVAL)
def relay_outbox() -> str:
    # Inline on purpose: this sweep is what makes up for a flushed or unreachable Redis.
    relayed = outbox.relay_pending()
    return f"{relayed} message(s) relayed"


# --------------------------------------------------------------------------- storefront

CART_SWEEP_INTERVAL = 60


@schedule("storefront.sweep_carts", every=CART_SWEEP_INTERVAL)
def sweep_carts() -> str:
    # Housekeeping only: availability already ignores expired holds by time. Commits per batch.
    return str(holds.sweep_expired())
