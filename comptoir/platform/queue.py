"""Where outbox messages run: RQ queues in Redis, or a thread in this process.

With ``COMPTOIR_REDIS_URL`` set, a committed outbox message becomes an RQ job that calls
:func:`comptoir.jobs.runner.run_outbox_message` in a worker (``comptoir worker``), with retries on
the outbox's backoff schedule. Without it (the embedded default), a single background thread runs
the messages in order after the commit, inside an app context of its own; a failed message is
tried again by the relay sweep once its backoff delay has passed.
"""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
from typing import TYPE_CHECKING

from redis import Redis
from rq import Queue as RQQueue
from rq import Retry

from comptoir.platform import outbox

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger(__name__)

RETRY_INTERVALS = list(outbox.RETRY_DELAYS)
RUN_MESSAGE = "comptoir.jobs.runner.run_outbox_message"
# Failed RQ jobs stay a week for operators to look at.
FAILURE_TTL = 7 * 24 * 3600
# Workers listen in this order: the first non-empty queue wins.
QUEUE_NAMES = tuple(queue.value for queue in outbox.Queue)


def redis_connection(url: str, *, timeout: float | None = None) -> Redis:
    if timeout is None:
        return Redis.from_url(url)
    return Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def rq_queue(connection: Redis, name: str) -> RQQueue:
    return RQQueue(name, connection=connection)


def rq_queues(connection: Redis) -> list[RQQueue]:
    """Every Comptoir queue, highest priority first."""
    return [rq_queue(connection, name) for name in QUEUE_NAMES]


# Relaying happens right after a commit, in the request: an unreachable Redis must not hold the
# response for long (the sweep relays the message later).
DISPATCH_TIMEOUT = 5.0


class RQDispatcher:
    def __init__(self, redis_url: str) -> None:
        self.connection = redis_connection(redis_url, timeout=DISPATCH_TIMEOUT)

    def __call__(self, message_id: int, queue: str) -> None:
        rq_queue(self.connection, queue).enqueue(
            RUN_MESSAGE,
            message_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            description=f"outbox message {message_id}",
            failure_ttl=FAILURE_TTL,
        )


class InProcessDispatcher:
    """One daemon thread that runs messages after commit, for the embedded default."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pending: stdlib_queue.Queue[int] = stdlib_queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, message_id: int, queue: str) -> None:
        self._ensure_thread()
        self.pending.put(message_id)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="comptoir-inprocess-jobs", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            message_id = self.pending.get()
            try:
                with self.app.app_context():
                    outbox.run_message(message_id)
            except Exception:
                # Recorded on the row by run_message; the relay sweep retries it later.
                logger.exception("in-process job for outbox message %s failed", message_id)
            finally:
                self.pending.task_done()

    def drain(self) -> None:
        """Wait until every message handed over so far has run (tests, CLI commands)."""
        self.pending.join()
