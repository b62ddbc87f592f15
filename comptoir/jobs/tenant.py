"""``tenant_job``: a job that works inside one organization, with one commit.

    @tenant_job("billing.send_invoice", queue=Queue.LOW)
    def send_invoice(*, organization_id: int, order_id: int) -> None:
        order = billing_services.get_order(order_id)   # scoped to the organization
        ...                                             # services flush, never commit

    send_invoice.enqueue(order_id=order.id)            # in a request: through the outbox
    send_invoice(organization_id=org.id, order_id=7)   # in a sweep: runs now, commits once

Run by the outbox (``run_message``), the function shares the runner's transaction: the runner has
entered the organization's scope and commits the job's changes together with marking the message
done. Called directly, the wrapper enters the scope itself and commits once at the end (or rolls
back and re-raises). Either way the function must not commit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any, Generic, ParamSpec, TypeVar

from comptoir.platform import outbox
from comptoir.platform.db import db
from comptoir.platform.outbox import OutboxMessage, Queue
from comptoir.platform.tenancy import tenant_scope

P = ParamSpec("P")
R = TypeVar("R")


class TenantJob(Generic[P, R]):
    """The decorated function, callable as before, plus :meth:`enqueue`."""

    def __init__(self, name: str, function: Callable[P, R], queue: Queue) -> None:
        self.name = name
        self.function = function
        self.queue = queue
        update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if args:
            message = f"job {self.name!r} takes keyword arguments only (ids, not objects)"
            raise TypeError(message)
        organization_id = kwargs.get("organization_id")
        if not isinstance(organization_id, int):
            message = f"job {self.name!r} needs organization_id=<int>"
            raise TypeError(message)
        if outbox.running_message_id() is not None:
            # Inside run_message: already in the organization's scope and its transaction.
            return self.function(*args, **kwargs)
        session = db.session
        if session.new or session.dirty or session.deleted:
            message = (
                f"job {self.name!r} called with unsaved changes in the session; commit or roll "
                "them back first: the job commits its own work only"
            )
            raise RuntimeError(message)
        with tenant_scope(organization_id):
            try:
                result = self.function(*args, **kwargs)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return result

    def enqueue(self, **arguments: Any) -> OutboxMessage:
        """Owe this job for the organization in scope, in the current transaction."""
        return outbox.enqueue(self.name, queue=self.queue, **arguments)

    def __repr__(self) -> str:
        return f"<tenant job {self.name}>"


def tenant_job(
    name: str, *, queue: Queue = Queue.DEFAULT
) -> Callable[[Callable[P, R]], TenantJob[P, R]]:
    """Register ``name`` with the outbox as a tenant job run by the decorated function.

    The function takes ``organization_id`` and object ids as keyword arguments, is idempotent
    (a message may be delivered twice; the second run must change nothing) and does not commit.
    """

    def decorator(function: Callable[P, R]) -> TenantJob[P, R]:
        job = TenantJob(name, function, queue)
        outbox.register_job(name, tenant=True, queue=queue)(job)
        return job

    return decorator
