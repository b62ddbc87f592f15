"""The scheduler: exactly one active instance runs the periodic entries of ``schedules``.

Any number of ``comptoir scheduler`` processes (and ``comptoir serve`` threads on the embedded
default) may run; they elect a leader through a lock only one can hold:

- on PostgreSQL, a session-level advisory lock (``pg_try_advisory_lock``) held on a connection of
  its own. It lasts as long as that database session: when the leader dies, PostgreSQL ends its
  session and frees the lock, and a standby (retrying every few seconds) takes over. The URL must
  reach PostgreSQL directly or through a session-pooling proxy: advisory locks do not survive
  transaction pooling;
- on SQLite, an exclusive ``flock`` on ``scheduler.lock`` in the instance folder, freed by the
  operating system when the holder exits.

The leader checks every few seconds that it still holds the lock and steps down otherwise.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from flask import Flask
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy.pool import NullPool

from comptoir.jobs.schedules import ScheduleEntry, schedule_entries
from comptoir.platform.db import db
from comptoir.platform.queue import redis_connection, rq_queue
from comptoir.platform.settings import SETTINGS_EXTENSION, Settings

logger = logging.getLogger(__name__)

# The same 64-bit key in every process: derived from a fixed name, not configured.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"comptoir.scheduler").digest()[:8], "big", signed=True
)
LOCK_FILE_NAME = "scheduler.lock"
DEFAULT_RETRY_INTERVAL = 5.0
RUN_SCHEDULED_ENTRY = "comptoir.jobs.runner.run_scheduled_entry"
# RQ job states in which a queued sweep has not finished yet: do not queue it again.
_UNFINISHED = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}

Report = Callable[..., None]


class LeaderLock(Protocol):
    description: str

    def acquire(self) -> bool:
        """Try once, without waiting; True when this instance now leads."""

    def held(self) -> bool:
        """Whether the lock is still ours (the leader asks before each round)."""

    def release(self) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated connection."""

    def __init__(self, database_url: str, *, key: int = ADVISORY_LOCK_KEY) -> None:
        self.key = key
        url = sa.engine.make_url(database_url)
        connect_args: dict[str, Any] = {}
        if url.get_driver_name() == "psycopg":
            connect_args = {
                "application_name": f"comptoir-scheduler:{os.getpid()}",
                # A leader whose host vanishes is noticed within about a minute.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                "connect_timeout": 10,
            }
        self._engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        self._connection: sa.Connection | None = None
        self.description = f"PostgreSQL advisory lock {key} on {url.database}"

    def acquire(self) -> bool:
        try:
            if self._connection is None:
                self._connection = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            acquired = self._connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        except sa.exc.SQLAlchemyError as error:
            logger.warning("scheduler lock: database unreachable (%s)", type(error).__name__)
            self._close()
            return False
        return bool(acquired)

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            # The session is gone, and the lock with it.
            self._close()
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
            except sa.exc.SQLAlchemyError:
                logger.debug("scheduler lock: unlock failed; closing the session frees it")
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except sa.exc.SQLAlchemyError:
                logger.debug("scheduler lock: connection already closed")
            self._connection = None

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()


class FileLock:
    """An exclusive, non-blocking ``flock`` on a file (embedded default, SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.description = f"file lock {path}"

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def dispose(self) -> None:
        self.release()


def leader_lock_for(settings: Settings) -> AdvisoryLock | FileLock:
    url = settings.effective_database_url
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        return AdvisoryLock(url)
    return FileLock(settings.instance_path / LOCK_FILE_NAME)


def _log_report(message: str, *, routine: bool = False) -> None:
    logger.log(logging.DEBUG if routine else logging.INFO, "scheduler: %s", message)


class Scheduler:
    """Elects itself leader (or waits), then runs the due entries until told to stop."""

    def __init__(
        self,
        app: Flask,
        *,
        lock: AdvisoryLock | FileLock | None = None,
        entries: list[ScheduleEntry] | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        report: Report = _log_report,
    ) -> None:
        self.app = app
        self.settings: Settings = app.extensions[SETTINGS_EXTENSION]
        self.lock = lock or leader_lock_for(self.settings)
        self.entries = entries if entries is not None else schedule_entries()
        self.retry_interval = retry_interval
        self.report = report
        self.is_leader = False
        self.runs: dict[str, int] = {}

    # ----------------------------------------------------------------- election

    def run(self, stop: threading.Event, *, once: bool = False) -> bool:
        """Lead or stand by until ``stop`` is set. With ``once``: one round if leader, then return.

        Returns whether this instance led at some point.
        """
        led = False
        standing_by = False
        try:
            while not stop.is_set():
                if self.lock.acquire():
                    led = True
                    standing_by = False
                    self._lead(stop, once=once)
                    if once:
                        break
                    continue
                if not standing_by:
                    self.report(
                        f"standby: another scheduler holds the {self.lock.description}; "
                        f"trying again every {self.retry_interval:g}s"
                    )
                    standing_by = True
                if once:
                    break
                stop.wait(self.retry_interval)
        finally:
            self._step_down()
        return led

    def _lead(self, stop: threading.Event, *, once: bool) -> None:
        self.is_leader = True
        listing = ", ".join(f"{e.name} every {e.interval:g}s" for e in self.entries) or "none"
        self.report(f"leader (pid {os.getpid()}, {self.lock.description}); entries: {listing}")
        due = {entry.name: 0.0 for entry in self.entries}
        while not stop.is_set():
            if not self.lock.held():
                self.report("lost the lock; standing by")
                self.is_leader = False
                return
            for entry in self.entries:
                if stop.is_set():
                    break
                started = time.monotonic()
                if due[entry.name] <= started:
                    self.run_entry(entry)
                    due[entry.name] = started + entry.interval
            if once:
                return
            next_due = min(due.values(), default=time.monotonic() + self.retry_interval)
            wait = min(max(next_due - time.monotonic(), 0.05), self.retry_interval)
            stop.wait(wait)

    def _step_down(self) -> None:
        if self.is_leader:
            self.report("stepping down; lock released")
        self.is_leader = False
        self.lock.release()

    # ----------------------------------------------------------------- entries

    def run_entry(self, entry: ScheduleEntry) -> None:
        started = time.monotonic()
        with self.app.app_context():
            try:
                if entry.queue is not None and self.settings.redis_url:
                    outcome = self._send_to_queue(entry)
                else:
                    outcome = entry.function()
                    db.session.commit()
            except Exception as error:
                db.session.rollback()
                logger.exception("scheduled entry %s failed", entry.name)
                self.report(f"{entry.name} failed: {type(error).__name__}: {error}")
                return
            finally:
                db.session.remove()
        self.runs[entry.name] = self.runs.get(entry.name, 0) + 1
        elapsed = (time.monotonic() - started) * 1000
        suffix = f": {outcome}" if outcome is not None else ""
        self.report(f"ran {entry.name} in {elapsed:.0f} ms{suffix}", routine=True)

    def _send_to_queue(self, entry: ScheduleEntry) -> str:
        assert entry.queue is not None
        # RQ job ids allow letters, digits, underscores and dashes only.
        job_id = "comptoir-schedule-" + re.sub(r"[^A-Za-z0-9_-]", "_", entry.name)
        connection = redis_connection(self.settings.redis_url, timeout=10.0)
        try:
            try:
                status = Job.fetch(job_id, connection=connection).get_status()
            except NoSuchJobError:
                status = None
            if status in _UNFINISHED:
                state = status.value if status else ""
                return f"previous run still {state} in RQ; not queued again"
            rq_queue(connection, entry.queue.value).enqueue(
                RUN_SCHEDULED_ENTRY,
                entry.name,
                job_id=job_id,
                description=f"scheduled {entry.name}",
                result_ttl=max(int(entry.interval), 60),
                failure_ttl=24 * 3600,
            )
        finally:
            connection.close()
        return f"sent to RQ queue {entry.queue.value}"


def start_background_scheduler(
    app: Flask, *, retry_interval: float = DEFAULT_RETRY_INTERVAL
) -> tuple[threading.Thread, threading.Event]:
    """Run the scheduler in a daemon thread of this process (``comptoir serve``, embedded)."""
    stop = threading.Event()
    scheduler = Scheduler(app, retry_interval=retry_interval)
    thread = threading.Thread(
        target=scheduler.run, args=(stop,), name="comptoir-scheduler", daemon=True
    )
    thread.start()
    return thread, stop
